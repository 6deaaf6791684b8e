-- Sites whose figures the demo seeded as sample data (gateway/sample_data.py): the dashboard labels
-- them, and the marker is written before the first sample row, so a demo started again never seeds twice.
CREATE TABLE sample_data (
    site_id   TEXT PRIMARY KEY,
    seeded_at TEXT NOT NULL
);
