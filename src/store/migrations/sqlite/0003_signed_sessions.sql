-- Sessions become signed tokens (HMAC-SHA256 with a per-database secret), so
-- a sign-in writes no session row. The database keeps the secret, shared by
-- every server process on it, and the tokens signed out before they expire.
CREATE TABLE IF NOT EXISTS server_secrets (
    name       TEXT    PRIMARY KEY NOT NULL,
    secret     BLOB    NOT NULL,
    created_ms INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS revoked_sessions (
    id         BLOB    PRIMARY KEY NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_sessions_by_expiry ON revoked_sessions(expires_ms);

DROP TABLE IF EXISTS sessions;
