-- Dashboard accounts. Passwords are scrypt hashes (gateway/accounts/passwords.py), never text.
CREATE TABLE users (
    id                  INTEGER PRIMARY KEY,
    name                TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    password_hash       TEXT    NOT NULL,
    is_admin            INTEGER NOT NULL DEFAULT 0,  -- the instance admin: every site, user management
    created_at          TEXT    NOT NULL,            -- ISO 8601, UTC
    password_changed_at TEXT    NOT NULL
);

-- What a user may see: one role per site. owner: the site's settings and shared links; viewer: read only.
CREATE TABLE site_roles (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    site_id TEXT    NOT NULL,
    role    TEXT    NOT NULL CHECK (role IN ('owner', 'viewer')),
    PRIMARY KEY (user_id, site_id)
);

-- Failed logins in the throttling window, per account ("account:NAME") and per network
-- ("network:203.0.113.0/24", never a raw address); older rows are deleted as new ones come.
CREATE TABLE login_failures (
    key TEXT NOT NULL,
    at  TEXT NOT NULL  -- ISO 8601, UTC
);
CREATE INDEX login_failures_key ON login_failures (key, at);
