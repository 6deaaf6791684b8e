-- Dashboard sessions kept server-side, so logout, a password change, a role change or removing
-- the user ends them at once (gateway/accounts/sessions.py). The cookie holds a random 256-bit
-- id; only its SHA-256 is stored, so a copy of the database signs nobody in.
CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY,              -- what the admin page names a session by
    id_hash     TEXT    NOT NULL UNIQUE,          -- hex SHA-256 of the cookie's session id
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token  TEXT    NOT NULL,                 -- bound to this session (synchronizer token)
    created_at  TEXT    NOT NULL,                 -- ISO 8601, UTC
    last_seen   TEXT    NOT NULL,                 -- updated at most once a minute
    network     TEXT                              -- the login's network (/24 or /48), never an address
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_last_seen ON sessions (last_seen);

-- Login and shared-link password attempts, reserved before the password is checked
-- (gateway/accounts/throttle.py). key: "pair:NAME|NETWORK", "account:NAME" or "network:NETWORK";
-- one attempt writes one row per key, with the same attempt id. Replaces login_failures.
DROP TABLE login_failures;
CREATE TABLE login_attempts (
    key     TEXT NOT NULL,
    at      TEXT NOT NULL,  -- ISO 8601, UTC
    attempt TEXT NOT NULL   -- random: a success releases its own rows
);
CREATE INDEX login_attempts_key ON login_attempts (key, at);
CREATE INDEX login_attempts_attempt ON login_attempts (attempt);
