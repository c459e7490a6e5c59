-- Sessions become signed tokens (HMAC-SHA256 with a per-database secret), so
-- a sign-in writes no session row. The database keeps the secret, shared by
-- every server process on it, and the tokens signed out before they expire.
CREATE TABLE IF NOT EXISTS server_secrets (
    name       TEXT   PRIMARY KEY,
    secret     BYTEA  NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS revoked_sessions (
    id         BYTEA  PRIMARY KEY,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_sessions_by_expiry ON revoked_sessions(expires_ms);

DROP TABLE IF EXISTS sessions;
