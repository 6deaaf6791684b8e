-- API keys for the JSON stats API, one site each. A key is shown once, when it is created,
-- and stored only as its SHA-256: a copy of the database gives nobody a working key. The
-- key is 256 random bits, so a fast hash is enough (no guessing to slow down, unlike a
-- password) and lets a request find its key by an indexed lookup. The prefix (the first 8
-- characters, "cg_" and 5 more) is kept in clear so owners can tell their keys apart.
CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    site_id      TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    prefix       TEXT    NOT NULL,
    key_hash     TEXT    NOT NULL UNIQUE,  -- sha256 hex of the whole key
    created_at   TEXT    NOT NULL,         -- ISO 8601, UTC
    last_used_at TEXT,                     -- updated at most once a minute
    revoked_at   TEXT                      -- NULL: in use; a revoked key is kept for the listing
);
CREATE INDEX api_keys_site ON api_keys (site_id, id);

-- Read-only links to a site's dashboard. The link's token is signed (itsdangerous) over the
-- row id and a random nonce: without the nonce nobody can build a token from an id, and a
-- token of a deleted link never opens a new link that got the same id. The token carries
-- neither the site nor the password; a password, if any, is a scrypt hash.
CREATE TABLE shared_links (
    id            INTEGER PRIMARY KEY,
    site_id       TEXT    NOT NULL,
    label         TEXT    NOT NULL,
    nonce         TEXT    NOT NULL,
    password_hash TEXT,                    -- NULL: no password asked
    created_at    TEXT    NOT NULL,        -- ISO 8601, UTC
    expires_at    TEXT,                    -- NULL: until revoked
    revoked_at    TEXT
);
CREATE INDEX shared_links_site ON shared_links (site_id, id);
