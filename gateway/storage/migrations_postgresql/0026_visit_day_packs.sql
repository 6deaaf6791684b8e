-- The same change as the SQLite migration 0026_visit_day_packs.sql (read there why), in PostgreSQL's
-- DDL. The packs are stored uncompressed (STORAGE EXTERNAL): their codes are already narrow, and a
-- view reads sixty of them at once.
DROP TRIGGER visit_days_follow_visits ON visits;
DROP TRIGGER visit_days_follow_rollups ON rollups;
DROP FUNCTION visit_days_follow_visits();
DROP FUNCTION visit_days_follow_rollups();
DROP TABLE visit_day_values;
DROP TABLE visit_days;
DELETE FROM visit_day_generations;

CREATE TABLE visit_day_packs (
    site_id TEXT  COLLATE "C" NOT NULL,
    day     TEXT  COLLATE "C" NOT NULL,
    pack    BYTEA NOT NULL,
    PRIMARY KEY (site_id, day)
);
ALTER TABLE visit_day_packs ALTER COLUMN pack SET STORAGE EXTERNAL;

CREATE FUNCTION visit_day_packs_follow_visits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM visit_day_packs
    WHERE site_id = OLD.site_id
      AND day >= to_char(CAST(substr(OLD.started_at, 1, 10) AS date) - 1, 'YYYY-MM-DD')
      AND day <= to_char(CAST(substr(OLD.last_seen, 1, 10) AS date) + 1, 'YYYY-MM-DD');
    RETURN NULL;
END;
$$;

CREATE TRIGGER visit_day_packs_follow_visits AFTER DELETE ON visits
FOR EACH ROW EXECUTE FUNCTION visit_day_packs_follow_visits();

CREATE FUNCTION visit_day_packs_follow_rollups() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM visit_day_packs WHERE site_id = OLD.site_id AND day = OLD.day;
    DELETE FROM visit_day_generations WHERE site_id = OLD.site_id AND day = OLD.day;
    RETURN NULL;
END;
$$;

CREATE TRIGGER visit_day_packs_follow_rollups AFTER DELETE ON rollups
FOR EACH ROW WHEN (OLD.dimension = 'all') EXECUTE FUNCTION visit_day_packs_follow_rollups();
