-- Filtered views at 10M events (issue 12): the stored visits of 0016, rebuilt so that a filter reads only
-- the visits it matches. Nothing of them is lost: they are a cache of the raw events, rebuilt per day
-- (the generations are emptied, so every day builds again at its next read or rollup).
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
DROP TABLE visit_days;
DROP TABLE visit_day_values;
DELETE FROM visit_day_generations;

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
