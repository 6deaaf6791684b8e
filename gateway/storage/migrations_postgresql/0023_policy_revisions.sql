-- What a visitor saw, kept once (issue 13; SQLite's 0023 says why): each distinct banner a record
-- answered, under the SHA-256 the record holds as banner_hash; ``content`` is the hashed JSON.
CREATE TABLE policy_revisions (
    content_hash TEXT    COLLATE "C" PRIMARY KEY,
    site_id      TEXT    COLLATE "C" NOT NULL,
    revision     INTEGER NOT NULL,
    language     TEXT    COLLATE "C" NOT NULL,
    content      TEXT    NOT NULL,
    first_used   TEXT    COLLATE "C" NOT NULL
);
CREATE INDEX policy_revisions_by_site ON policy_revisions (site_id, revision);

CREATE FUNCTION policy_revisions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'policy_revisions is immutable' USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER policy_revisions_immutable BEFORE UPDATE ON policy_revisions
FOR EACH ROW EXECUTE FUNCTION policy_revisions_immutable();

ALTER TABLE consent_records ADD COLUMN revision_hash TEXT COLLATE "C";
CREATE INDEX consent_records_by_site_seq ON consent_records (site_id, seq);

-- The append-only rule, now also keeping the pointer to the revision (SQLite's 0023, word for word).
CREATE OR REPLACE FUNCTION consent_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.erased = 1 AND OLD.erased = 0 AND NEW.consent_id <> OLD.consent_id
        AND NEW.seq = OLD.seq AND NEW.site_id = OLD.site_id
        AND NEW.method = OLD.method AND NEW.policy_revision = OLD.policy_revision
        AND NEW.banner_hash = OLD.banner_hash AND NEW.categories = OLD.categories
        AND NEW.services = OLD.services AND NEW.gpc = OLD.gpc
        AND NEW.revision_hash IS NOT DISTINCT FROM OLD.revision_hash
        AND NEW.language IS NULL AND NEW.page_path IS NULL
        AND NEW.ip_network IS NULL AND NEW.ua_family IS NULL
        AND NEW.country IS NULL AND NEW.device IS NULL
        -- the start of the same day: at most a day earlier, never later, on a quarter hour (time zones)
        AND julianday(NEW.recorded_at) <= julianday(OLD.recorded_at)
        AND julianday(OLD.recorded_at) - julianday(NEW.recorded_at) < 1
        AND to_char(cg_utc_timestamp(NEW.recorded_at), 'MI:SS.MS') IN ('00:00.000', '15:00.000', '30:00.000', '45:00.000')
        AND (
            (NEW.expires_at IS NULL AND OLD.expires_at IS NULL)
            OR (
                julianday(NEW.expires_at) <= julianday(OLD.expires_at)
                AND julianday(OLD.expires_at) - julianday(NEW.expires_at) < 1
                AND to_char(cg_utc_timestamp(NEW.expires_at), 'MI:SS.MS')
                    IN ('00:00.000', '15:00.000', '30:00.000', '45:00.000')
            )
        )
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'consent_records is append-only' USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

ALTER TABLE api_keys ADD COLUMN permissions TEXT COLLATE "C" NOT NULL DEFAULT '';
