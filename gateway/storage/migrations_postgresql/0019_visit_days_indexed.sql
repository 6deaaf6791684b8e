-- The stored visits rebuilt for filtered views at 10M events: the SQLite migration
-- 0019_visit_days_indexed.sql says why (a visitor number per day, the mixed bits, one index per common
-- filter column), in PostgreSQL's DDL. The triggers of 0016 find the new tables by name.
DROP TABLE visit_days;
DROP TABLE visit_day_values;
DELETE FROM visit_day_generations;

CREATE TABLE visit_days (
    site_id         TEXT    COLLATE "C" NOT NULL,
    day             TEXT    COLLATE "C" NOT NULL,
    visit_id        BIGINT  NOT NULL,
    visitor         INTEGER NOT NULL,
    mixed           INTEGER NOT NULL,
    pageviews       INTEGER NOT NULL,
    events          INTEGER NOT NULL,
    bounce          INTEGER NOT NULL,
    duration        BIGINT  NOT NULL,
    started         INTEGER NOT NULL,
    visit_pageviews INTEGER NOT NULL,
    visit_events    INTEGER NOT NULL,
    entry_page      TEXT    COLLATE "C" NOT NULL,
    exit_page       TEXT    COLLATE "C" NOT NULL,
    source          TEXT    COLLATE "C" NOT NULL,
    channel         TEXT    COLLATE "C" NOT NULL,
    referrer        TEXT    COLLATE "C" NOT NULL,
    utm_source      TEXT    COLLATE "C" NOT NULL,
    utm_medium      TEXT    COLLATE "C" NOT NULL,
    utm_campaign    TEXT    COLLATE "C" NOT NULL,
    utm_content     TEXT    COLLATE "C" NOT NULL,
    utm_term        TEXT    COLLATE "C" NOT NULL,
    country         TEXT    COLLATE "C" NOT NULL,
    region          TEXT    COLLATE "C" NOT NULL,
    city            TEXT    COLLATE "C" NOT NULL,
    browser         TEXT    COLLATE "C" NOT NULL,
    browser_version TEXT    COLLATE "C" NOT NULL,
    os              TEXT    COLLATE "C" NOT NULL,
    os_version      TEXT    COLLATE "C" NOT NULL,
    device          TEXT    COLLATE "C" NOT NULL,
    screen          TEXT    COLLATE "C" NOT NULL,
    PRIMARY KEY (site_id, day, visit_id)
);
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

CREATE TABLE visit_day_values (
    site_id   TEXT    COLLATE "C" NOT NULL,
    day       TEXT    COLLATE "C" NOT NULL,
    visit_id  BIGINT  NOT NULL,
    dimension TEXT    COLLATE "C" NOT NULL,
    value     TEXT    COLLATE "C" NOT NULL,
    visitor   INTEGER NOT NULL,
    pageviews INTEGER NOT NULL,
    events    INTEGER NOT NULL,
    PRIMARY KEY (site_id, day, visit_id, dimension, value)
);
CREATE INDEX visit_day_values_visit ON visit_day_values (visit_id);
