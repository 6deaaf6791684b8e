-- What a visitor saw, kept once (issue 13): each distinct banner a record answered (the site, its
-- policy revision, the language, the texts shown, the categories, services and cookies offered,
-- the policy URL), stored the first time a record uses it under the SHA-256 that record already
-- holds as banner_hash. ``content`` is exactly the JSON the hash was computed from, so anyone can
-- recompute it. Several nodes insert the same revision at once: INSERT ... ON CONFLICT DO NOTHING.
CREATE TABLE policy_revisions (
    content_hash TEXT    PRIMARY KEY,
    site_id      TEXT    NOT NULL,
    revision     INTEGER NOT NULL,
    language     TEXT    NOT NULL,
    content      TEXT    NOT NULL,  -- JSON, keys sorted: sha256(content) = content_hash
    first_used   TEXT    NOT NULL   -- ISO 8601, UTC
);
CREATE INDEX policy_revisions_by_site ON policy_revisions (site_id, revision);

-- Evidence does not change: a stored revision is never rewritten.
CREATE TRIGGER policy_revisions_immutable
BEFORE UPDATE ON policy_revisions
BEGIN
    SELECT RAISE(ABORT, 'policy_revisions is immutable');
END;

-- A record points to the revision it answered; records from before keep only their banner_hash
-- (NULL here: their text was not kept).
ALTER TABLE consent_records ADD COLUMN revision_hash TEXT;
-- The export reads a site's records in keyset pages by seq.
CREATE INDEX consent_records_by_site_seq ON consent_records (site_id, seq);

-- The append-only rule of 0010, now also keeping the pointer to the revision.
DROP TRIGGER consent_records_append_only;
CREATE TRIGGER consent_records_append_only
BEFORE UPDATE ON consent_records
WHEN NOT (
    NEW.erased = 1 AND OLD.erased = 0 AND NEW.consent_id != OLD.consent_id
    AND NEW.seq = OLD.seq AND NEW.site_id = OLD.site_id
    AND NEW.method = OLD.method AND NEW.policy_revision = OLD.policy_revision
    AND NEW.banner_hash = OLD.banner_hash AND NEW.categories = OLD.categories
    AND NEW.services = OLD.services AND NEW.gpc = OLD.gpc
    AND NEW.revision_hash IS OLD.revision_hash
    AND NEW.language IS NULL AND NEW.page_path IS NULL
    AND NEW.ip_network IS NULL AND NEW.ua_family IS NULL
    AND NEW.country IS NULL AND NEW.device IS NULL
    -- the start of the same day: at most a day earlier, never later, on a quarter hour (time zones)
    AND julianday(NEW.recorded_at) <= julianday(OLD.recorded_at)
    AND julianday(OLD.recorded_at) - julianday(NEW.recorded_at) < 1
    AND strftime('%M:%f', NEW.recorded_at) IN ('00:00.000', '15:00.000', '30:00.000', '45:00.000')
    AND (
        (NEW.expires_at IS NULL AND OLD.expires_at IS NULL)
        OR (
            julianday(NEW.expires_at) <= julianday(OLD.expires_at)
            AND julianday(OLD.expires_at) - julianday(NEW.expires_at) < 1
            AND strftime('%M:%f', NEW.expires_at) IN ('00:00.000', '15:00.000', '30:00.000', '45:00.000')
        )
    )
)
BEGIN
    SELECT RAISE(ABORT, 'consent_records is append-only');
END;

-- What an API key may read besides the statistics: a space-separated list ('consent_log'). Keys
-- made before have none, so a stats key cannot read the consent log.
ALTER TABLE api_keys ADD COLUMN permissions TEXT NOT NULL DEFAULT '';
