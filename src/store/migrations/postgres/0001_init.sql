-- hwkey relying-party storage, PostgreSQL.
CREATE TABLE IF NOT EXISTS users (
    handle       BYTEA   PRIMARY KEY,
    username     TEXT    NOT NULL UNIQUE,
    display_name TEXT    NOT NULL,
    created_ms   BIGINT  NOT NULL
);

CREATE TABLE IF NOT EXISTS credentials (
    id                  BYTEA   PRIMARY KEY,
    user_handle         BYTEA   NOT NULL REFERENCES users(handle) ON DELETE CASCADE,
    public_key          BYTEA   NOT NULL,
    algorithm           BIGINT  NOT NULL,
    sign_count          BIGINT  NOT NULL,
    uv_initialized      BOOLEAN NOT NULL,
    transports          TEXT    NOT NULL,
    backup_eligible     BOOLEAN NOT NULL,
    backed_up           BOOLEAN NOT NULL,
    aaguid              TEXT    NOT NULL,
    attestation_format  TEXT    NOT NULL,
    attestation_type    TEXT    NOT NULL,
    attestation_trusted BOOLEAN NOT NULL,
    discoverable        BOOLEAN,
    nickname            TEXT    NOT NULL,
    created_ms          BIGINT  NOT NULL,
    last_used_ms        BIGINT
);
CREATE INDEX IF NOT EXISTS credentials_by_user ON credentials(user_handle);

CREATE TABLE IF NOT EXISTS ceremonies (
    id         BYTEA  PRIMARY KEY,
    state      TEXT   NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS ceremonies_by_expiry ON ceremonies(expires_ms);

CREATE TABLE IF NOT EXISTS sessions (
    id          BYTEA  PRIMARY KEY,
    user_handle BYTEA  NOT NULL REFERENCES users(handle) ON DELETE CASCADE,
    created_ms  BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions(expires_ms);

CREATE TABLE IF NOT EXISTS audit_log (
    id            BIGSERIAL PRIMARY KEY,
    at_ms         BIGINT NOT NULL,
    event         TEXT   NOT NULL,
    username      TEXT,
    user_handle   BYTEA,
    credential_id BYTEA,
    code          TEXT,
    detail        TEXT   NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit_log(at_ms);
CREATE INDEX IF NOT EXISTS audit_by_username ON audit_log(username, at_ms);
