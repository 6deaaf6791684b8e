-- /metrics counts each node once (issue 12): a worker's snapshot names its node (one `serve`,
-- its workers share the id), and a node's /metrics adds only its own workers' rows. Rows from
-- before have no node (''), are never read as a sibling's and expire with the stopped workers.
ALTER TABLE worker_metrics ADD COLUMN node TEXT COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX worker_metrics_node ON worker_metrics (node, updated_at);
