-- A rollup mark carries the generation of the write that set it (issue 12). The planner used to clear
-- a mark when no event with an id above its snapshot's highest had arrived; with several writers
-- (PostgreSQL nodes) ids commit out of order, so a batch committed after the snapshot could hold
-- lower ids and its day was never rolled up again. Now the planner clears a mark only while it still
-- holds the generation the planner read; every batch that marks a day gives it a new one. SQLite
-- takes the numbers from a one-row counter (never reused, even when marks are deleted); PostgreSQL
-- from a sequence (migrations_postgresql/0001_schema.sql).
ALTER TABLE rollup_dirty ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;

CREATE TABLE rollup_dirty_counter (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO rollup_dirty_counter (id, generation) VALUES (1, 0);
