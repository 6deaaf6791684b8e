-- Filtered dashboard views (issue 12): a filter the rollups cannot answer used to read every raw
-- event of each day of the period (~10 us an event, several times over for the privacy floor's
-- drop-one rule). These tables hold each local day's visits once, already reduced to what the
-- figures need (gateway/storage/aggregates.py defines what a visit counts), so a filtered day reads
-- its visits, not its events. Built per day from raw events by gateway/storage/visit_days.py the
-- first time a filtered view needs the day after its rollups were (re)written: a day's rows carry
-- the rollup generation (migration 0009) they were built at, so a rebuild or a purge shows.
--
-- They hold the same visits and visit attributes as the raw events (a visitor as a number within
-- the day), so they go where the raw events go: a deleted visit (retention, erasure) takes its rows with it (trigger
-- below), and a day whose rollups are deleted takes its rows too.
--
-- - `visitor` is the visitor's number within the day (1, 2, ... in visitor id order) instead of the
--   32-character id: a distinct count over integers is several times cheaper, and one local day is
--   the only place where distinct people are counted (gateway/stats/privacy.py).
-- - `mixed` has a bit for each indexed filter column (1 country, 2 device, 4 browser, 8 os, 16 channel,
--   32 source) set when the visitor's visits of the day do not all share that column's value: an "is not"
--   cell is then the day minus the excluded value plus those few visitors, not a scan of every visit.
-- - One index per common filter column, (site, column, day): an "is" filter reads its visits only; and for
--   the columns a visitor rarely changes within a day, a partial index of the mixed visitors, so an "is not"
--   finds the excluded value's few mixed visitors without reading its rows.
-- - Both tables are clustered by (site, day, visit): a breakdown of pages joins each matching visit to
--   its pages with one seek.
CREATE TABLE visit_days (
    site_id         TEXT    NOT NULL,
    day             TEXT    NOT NULL,  -- the site's local day, as in rollups
    visit_id        INTEGER NOT NULL,
    visitor         INTEGER NOT NULL,  -- the visitor's number within the day
    mixed           INTEGER NOT NULL,  -- bits: the visitor's visits differ in country, device, browser, os, channel, source
    pageviews       INTEGER NOT NULL,  -- of the visit's events on this day
    events          INTEGER NOT NULL,
    bounce          INTEGER NOT NULL,  -- 1: at most one pageview in the whole visit
    duration        INTEGER NOT NULL,  -- seconds, the whole visit
    started         INTEGER NOT NULL,  -- 1: the visit started on this day (entry_page, exit_page count it)
    visit_pageviews INTEGER NOT NULL,  -- the whole visit's
    visit_events    INTEGER NOT NULL,
    -- each visit dimension's value as gateway/storage/aggregates.py computes it (coalesced to '')
    entry_page      TEXT    NOT NULL,
    exit_page       TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    referrer        TEXT    NOT NULL,
    utm_source      TEXT    NOT NULL,
    utm_medium      TEXT    NOT NULL,
    utm_campaign    TEXT    NOT NULL,
    utm_content     TEXT    NOT NULL,
    utm_term        TEXT    NOT NULL,
    country         TEXT    NOT NULL,
    region          TEXT    NOT NULL,
    city            TEXT    NOT NULL,
    browser         TEXT    NOT NULL,
    browser_version TEXT    NOT NULL,
    os              TEXT    NOT NULL,
    os_version      TEXT    NOT NULL,
    device          TEXT    NOT NULL,
    screen          TEXT    NOT NULL,
    PRIMARY KEY (site_id, day, visit_id)
) WITHOUT ROWID;
CREATE INDEX visit_days_visit ON visit_days (visit_id);
CREATE INDEX visit_days_country ON visit_days (site_id, country, day);
CREATE INDEX visit_days_country_mixed ON visit_days (site_id, country, day, visitor) WHERE (mixed & 1) != 0;
CREATE INDEX visit_days_device ON visit_days (site_id, device, day);
CREATE INDEX visit_days_device_mixed ON visit_days (site_id, device, day, visitor) WHERE (mixed & 2) != 0;
CREATE INDEX visit_days_browser ON visit_days (site_id, browser, day);
CREATE INDEX visit_days_browser_mixed ON visit_days (site_id, browser, day, visitor) WHERE (mixed & 4) != 0;
CREATE INDEX visit_days_os ON visit_days (site_id, os, day);
CREATE INDEX visit_days_os_mixed ON visit_days (site_id, os, day, visitor) WHERE (mixed & 8) != 0;
CREATE INDEX visit_days_channel ON visit_days (site_id, channel, day);
CREATE INDEX visit_days_source ON visit_days (site_id, source, day);

-- The event dimensions of each visit on each day: one row per visit and page viewed (pageviews) or
-- custom event name, as the rollups' per-visit facts.
CREATE TABLE visit_day_values (
    site_id   TEXT    NOT NULL,
    day       TEXT    NOT NULL,
    visit_id  INTEGER NOT NULL,
    dimension TEXT    NOT NULL,  -- 'page' or 'event'
    value     TEXT    NOT NULL,
    visitor   INTEGER NOT NULL,
    pageviews INTEGER NOT NULL,
    events    INTEGER NOT NULL,
    PRIMARY KEY (site_id, day, visit_id, dimension, value)
) WITHOUT ROWID;
CREATE INDEX visit_day_values_visit ON visit_day_values (visit_id);

-- Which rollup generation each day's rows were built at (absent: never built).
CREATE TABLE visit_day_generations (
    site_id    TEXT    NOT NULL,
    day        TEXT    NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (site_id, day)
);

CREATE TRIGGER visit_days_follow_visits
AFTER DELETE ON visits
BEGIN
    DELETE FROM visit_days WHERE visit_id = OLD.id;
    DELETE FROM visit_day_values WHERE visit_id = OLD.id;
END;

CREATE TRIGGER visit_days_follow_rollups
AFTER DELETE ON rollups WHEN OLD.dimension = 'all'
BEGIN
    DELETE FROM visit_days WHERE site_id = OLD.site_id AND day = OLD.day;
    DELETE FROM visit_day_values WHERE site_id = OLD.site_id AND day = OLD.day;
    DELETE FROM visit_day_generations WHERE site_id = OLD.site_id AND day = OLD.day;
END;
