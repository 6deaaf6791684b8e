-- An erasure leaves only a tombstone (issue 10): besides the personal parts blanked since 0001,
-- it now also drops the country and the device, and keeps the day of the record instead of its
-- instant (recorded_at and expires_at move back to the start of their day in the site's time
-- zone, so per-day figures stay as they were). The decision itself stays, as an anonymous count.
-- The consent id must change: the record is unlinked from the visitor.
DROP TRIGGER consent_records_append_only;
CREATE TRIGGER consent_records_append_only
BEFORE UPDATE ON consent_records
WHEN NOT (
    NEW.erased = 1 AND OLD.erased = 0 AND NEW.consent_id != OLD.consent_id
    AND NEW.seq = OLD.seq AND NEW.site_id = OLD.site_id
    AND NEW.method = OLD.method AND NEW.policy_revision = OLD.policy_revision
    AND NEW.banner_hash = OLD.banner_hash AND NEW.categories = OLD.categories
    AND NEW.services = OLD.services AND NEW.gpc = OLD.gpc
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
