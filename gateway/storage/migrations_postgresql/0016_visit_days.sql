-- Each local day's visits, kept once, so a filtered dashboard view reads visits, not events: the
-- same tables as the SQLite migration 0016_visit_days.sql (read there why), in PostgreSQL's DDL.
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

CREATE TABLE visit_day_generations (
    site_id    TEXT   COLLATE "C" NOT NULL,
    day        TEXT   COLLATE "C" NOT NULL,
    generation BIGINT NOT NULL,
    PRIMARY KEY (site_id, day)
);

CREATE FUNCTION visit_days_follow_visits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM visit_days WHERE visit_id = OLD.id;
    DELETE FROM visit_day_values WHERE visit_id = OLD.id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER visit_days_follow_visits AFTER DELETE ON visits
FOR EACH ROW EXECUTE FUNCTION visit_days_follow_visits();

CREATE FUNCTION visit_days_follow_rollups() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM visit_days WHERE site_id = OLD.site_id AND day = OLD.day;
    DELETE FROM visit_day_values WHERE site_id = OLD.site_id AND day = OLD.day;
    DELETE FROM visit_day_generations WHERE site_id = OLD.site_id AND day = OLD.day;
    RETURN NULL;
END;
$$;
CREATE TRIGGER visit_days_follow_rollups AFTER DELETE ON rollups
FOR EACH ROW WHEN (OLD.dimension = 'all') EXECUTE FUNCTION visit_days_follow_rollups();
