-- One row, rewritten by /healthz at most once every few seconds per worker (gateway/web/health.py):
-- a write transaction that commits proves the database file, its folder and the disk still take
-- writes, which a read (SELECT 1) never did. One row for every worker, so it never grows.
CREATE TABLE health (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at  TEXT    NOT NULL                  -- ISO 8601, UTC: the last write that was proved
);
