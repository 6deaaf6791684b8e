-- Filtered dashboard views (issue 12): each local day's stored visits as columns, one value per
-- (site, day), built by gateway/storage/visit_days.py and counted by gateway/stats/pack_figures.py
-- (gateway/storage/day_packs.py says why). They replace the row-per-visit tables of migration 0016:
-- the first request of a filtered 30-day view at 10M events spent 10-25 s finding each matching
-- visit of those tables through an index; a pack is read whole and counted with numpy.
--
-- The same visits as the raw events, so they go where those go: a day whose rollups are deleted
-- takes its pack (and its build generation) with it, and a deleted visit (retention, erasure) takes
-- the packs of every local day it may have events on (its UTC days, one day either side for the
-- site's zone). visit_days.stale_days treats a day without a pack as stale: it is built again from
-- what is left. The packs are built again on first use after this migration.
DROP TRIGGER visit_days_follow_visits;
DROP TRIGGER visit_days_follow_rollups;
DROP TABLE visit_day_values;
DROP TABLE visit_days;
DELETE FROM visit_day_generations;

CREATE TABLE visit_day_packs (
    site_id TEXT NOT NULL,
    day     TEXT NOT NULL,  -- the site's local day, as in rollups
    pack    BLOB NOT NULL,
    PRIMARY KEY (site_id, day)
);

CREATE TRIGGER visit_day_packs_follow_visits
AFTER DELETE ON visits
BEGIN
    DELETE FROM visit_day_packs
    WHERE site_id = OLD.site_id
      AND day >= date(substr(OLD.started_at, 1, 10), '-1 day')
      AND day <= date(substr(OLD.last_seen, 1, 10), '+1 day');
END;

CREATE TRIGGER visit_day_packs_follow_rollups
AFTER DELETE ON rollups WHEN OLD.dimension = 'all'
BEGIN
    DELETE FROM visit_day_packs WHERE site_id = OLD.site_id AND day = OLD.day;
    DELETE FROM visit_day_generations WHERE site_id = OLD.site_id AND day = OLD.day;
END;
