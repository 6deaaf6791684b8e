-- The consent report (banner impressions, decisions by country and device).
-- Country (ISO 3166-1 alpha-2) and device class ("desktop", "mobile", ...) are not personal at
-- this granularity, so an erasure keeps them with the anonymous decision. NULL: unknown.
ALTER TABLE consent_records ADD COLUMN country TEXT;
ALTER TABLE consent_records ADD COLUMN device TEXT;

-- The 0001 trigger did not know the new columns, so an erasure could have rewritten them:
-- recreated with the same rule plus "country and device stay as they were".
DROP TRIGGER consent_records_append_only;
CREATE TRIGGER consent_records_append_only
BEFORE UPDATE ON consent_records
WHEN NOT (
    NEW.erased = 1 AND OLD.erased = 0
    AND NEW.seq = OLD.seq AND NEW.site_id = OLD.site_id AND NEW.recorded_at = OLD.recorded_at
    AND NEW.method = OLD.method AND NEW.policy_revision = OLD.policy_revision
    AND NEW.banner_hash = OLD.banner_hash AND NEW.categories = OLD.categories
    AND NEW.services = OLD.services AND NEW.gpc = OLD.gpc
    AND NEW.language IS NULL AND NEW.page_path IS NULL
    AND NEW.ip_network IS NULL AND NEW.ua_family IS NULL
    AND NEW.expires_at IS OLD.expires_at
    AND NEW.country IS OLD.country AND NEW.device IS OLD.device
)
BEGIN
    SELECT RAISE(ABORT, 'consent_records is append-only');
END;

-- How often the banner was shown: a count per site, UTC day, country and device, nothing else
-- (no address, no visitor id, no time of day). "" is unknown: a key column must not be NULL,
-- or the upsert would never match it.
CREATE TABLE banner_impressions (
    site_id TEXT    NOT NULL,
    day     TEXT    NOT NULL,  -- YYYY-MM-DD, UTC
    country TEXT    NOT NULL,
    device  TEXT    NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (site_id, day, country, device)
) WITHOUT ROWID;
