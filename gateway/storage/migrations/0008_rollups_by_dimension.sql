-- The dashboard reads one dimension over a range of days; the primary key (site, day, dimension,
-- value) would make it read every dimension of those days. Covering: the figures are in the index.
CREATE INDEX rollups_by_dimension ON rollups (
    site_id, dimension, day, value, visitors, visits, pageviews, events, bounces, duration
);
