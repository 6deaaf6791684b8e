-- A batch continues visits by updating last_seen, exit_page, pageviews and events (issue 12: ingest
-- on PostgreSQL). With last_seen in an index every such update wrote a new entry into each of the
-- table's three indexes; now no index holds a column a continuation changes (visitor_id changes
-- only when a visit is re-keyed across midnight), so PostgreSQL updates the row in place on its
-- page (a heap-only tuple), and the free fifth of each page leaves it room to.
-- The open-visit lookup (gateway/storage/batch_visits.py) finds a visitor id's few visits of a day
-- by (site_id, visitor_id) and takes the latest itself.
DROP INDEX visits_open;
CREATE INDEX visits_open ON visits (site_id, visitor_id);
ALTER TABLE visits SET (fillfactor = 80);
