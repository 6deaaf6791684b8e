-- "(other)" must stand for k DISTINCT visitors (issue 10, section 2). A breakdown's "(other)" adds
-- the cells of a day's values under k, so one person on five small pages is five there; what the
-- privacy floor needs is how many people those values hold. The rollup computes it for the site's
-- k (min_visitors) alongside each day's rollups (gateway/storage/rollups.py); the dashboard falls
-- back to raw events for a k it finds no row for (gateway/stats/sums.py).
CREATE TABLE rollup_other_visitors (
    site_id   TEXT    NOT NULL,
    day       TEXT    NOT NULL,  -- the site's local day, as in rollups
    dimension TEXT    NOT NULL,  -- 'all' marks the day as computed for k; its visitors: the day's
    k         INTEGER NOT NULL,
    visitors  INTEGER NOT NULL,  -- distinct visitors with a value of fewer than k visitors (0 when absent)
    PRIMARY KEY (site_id, day, k, dimension)
);

-- The rows follow their day's rollups: a rebuild (which writes them again) or the purge of old
-- rollups deletes them with the day's "all" row.
CREATE TRIGGER rollup_other_visitors_follow_rollups
AFTER DELETE ON rollups WHEN OLD.dimension = 'all'
BEGIN
    DELETE FROM rollup_other_visitors WHERE site_id = OLD.site_id AND day = OLD.day;
END;
