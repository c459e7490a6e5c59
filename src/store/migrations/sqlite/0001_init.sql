-- hwkey relying-party storage, SQLite.
CREATE TABLE IF NOT EXISTS users (
    handle       BLOB    PRIMARY KEY NOT NULL,
    username     TEXT    NOT NULL UNIQUE,
    display_name TEXT    NOT NULL,
    created_ms   INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS credentials (
    id                  BLOB    PRIMARY KEY NOT NULL,
    user_handle         BLOB    NOT NULL REFERENCES users(handle) ON DELETE CASCADE,
    public_key          BLOB    NOT NULL,
    algorithm           INTEGER NOT NULL,
    sign_count          INTEGER NOT NULL,
    uv_initialized      INTEGER NOT NULL,
    transports          TEXT    NOT NULL,
    backup_eligible     INTEGER NOT NULL,
    backed_up           INTEGER NOT NULL,
    aaguid              TEXT    NOT NULL,
    attestation_format  TEXT    NOT NULL,
    attestation_type    TEXT    NOT NULL,
    attestation_trusted INTEGER NOT NULL,
    discoverable        INTEGER,
    nickname            TEXT    NOT NULL,
    created_ms          INTEGER NOT NULL,
    last_used_ms        INTEGER
);
CREATE INDEX IF NOT EXISTS credentials_by_user ON credentials(user_handle);

CREATE TABLE IF NOT EXISTS ceremonies (
    id         BLOB    PRIMARY KEY NOT NULL,
    state      TEXT    NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ceremonies_by_expiry ON ceremonies(expires_ms);

CREATE TABLE IF NOT EXISTS sessions (
    id          BLOB    PRIMARY KEY NOT NULL,
    user_handle BLOB    NOT NULL REFERENCES users(handle) ON DELETE CASCADE,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions(expires_ms);

CREATE TABLE IF NOT EXISTS audit_log (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms         INTEGER NOT NULL,
    event         TEXT    NOT NULL,
    username      TEXT,
    user_handle   BLOB,
    credential_id BLOB,
    code          TEXT,
    detail        TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit_log(at_ms);
CREATE INDEX IF NOT EXISTS audit_by_username ON audit_log(username, at_ms);
