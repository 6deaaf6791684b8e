-- Which rollups changed: every time a day's "all" row is written or deleted (a rebuild, a purge),
-- the day takes the next generation number. The dashboard keeps sums of settled days in memory
-- and checks them against the generations of their days (gateway/stats/sums.py). Triggers, so
-- every path that writes rollups (the planner, rebuild_day, the purge) is covered.
CREATE TABLE rollup_generations (
    site_id    TEXT    NOT NULL,
    day        TEXT    NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (site_id, day)
);

CREATE TRIGGER rollup_generation_on_insert
AFTER INSERT ON rollups WHEN NEW.dimension = 'all'
BEGIN
    INSERT INTO rollup_generations (site_id, day, generation)
    VALUES (NEW.site_id, NEW.day, (SELECT coalesce(max(generation), 0) + 1 FROM rollup_generations))
    ON CONFLICT (site_id, day) DO UPDATE SET generation = excluded.generation;
END;

CREATE TRIGGER rollup_generation_on_delete
AFTER DELETE ON rollups WHEN OLD.dimension = 'all'
BEGIN
    INSERT INTO rollup_generations (site_id, day, generation)
    VALUES (OLD.site_id, OLD.day, (SELECT coalesce(max(generation), 0) + 1 FROM rollup_generations))
    ON CONFLICT (site_id, day) DO UPDATE SET generation = excluded.generation;
END;
