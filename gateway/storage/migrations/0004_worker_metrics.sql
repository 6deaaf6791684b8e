-- Each worker process publishes a snapshot of its own counters every few seconds, so
-- /metrics answered by any worker shows the whole server (uvicorn --workers N).
CREATE TABLE worker_metrics (
    worker     TEXT NOT NULL,  -- a random id per process
    name       TEXT NOT NULL,
    labels     TEXT NOT NULL,  -- JSON array of [key, value] pairs, sorted
    value      REAL NOT NULL,
    updated_at TEXT NOT NULL,  -- ISO 8601, UTC: when the worker last published
    PRIMARY KEY (worker, name, labels)
);
