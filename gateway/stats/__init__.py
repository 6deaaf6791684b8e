"""Dashboard statistics: periods, filters and queries over the rollups (raw events for what they cannot answer)."""
