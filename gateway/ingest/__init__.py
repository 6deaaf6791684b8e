"""Ingestion: turning requests into anonymous events (parse -> named pipeline -> buffer)."""
