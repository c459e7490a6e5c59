-- Fallback factors: authenticator-app TOTP, recovery codes, sign-in attempts.
-- The TOTP secret is stored raw (the server has no encryption key option);
-- recovery codes only as Argon2id hashes.
CREATE TABLE IF NOT EXISTS otp_totp (
    user_handle  BYTEA   PRIMARY KEY REFERENCES users(handle) ON DELETE CASCADE,
    secret       BYTEA   NOT NULL,
    algorithm    TEXT    NOT NULL,
    digits       BIGINT  NOT NULL,
    period       BIGINT  NOT NULL,
    created_ms   BIGINT  NOT NULL,
    last_step    BIGINT,
    last_used_ms BIGINT
);

CREATE TABLE IF NOT EXISTS otp_totp_pending (
    user_handle  BYTEA   PRIMARY KEY REFERENCES users(handle) ON DELETE CASCADE,
    secret       BYTEA   NOT NULL,
    algorithm    TEXT    NOT NULL,
    digits       BIGINT  NOT NULL,
    period       BIGINT  NOT NULL,
    created_ms   BIGINT  NOT NULL
);

CREATE TABLE IF NOT EXISTS otp_recovery_codes (
    id          BIGSERIAL PRIMARY KEY,
    user_handle BYTEA     NOT NULL REFERENCES users(handle) ON DELETE CASCADE,
    hash        TEXT      NOT NULL,
    created_ms  BIGINT    NOT NULL
);
CREATE INDEX IF NOT EXISTS otp_recovery_by_user ON otp_recovery_codes(user_handle);

CREATE TABLE IF NOT EXISTS otp_attempts (
    id      BIGSERIAL PRIMARY KEY,
    subject TEXT      NOT NULL,
    at_ms   BIGINT    NOT NULL
);
CREATE INDEX IF NOT EXISTS otp_attempts_by_subject ON otp_attempts(subject, at_ms);
CREATE INDEX IF NOT EXISTS otp_attempts_by_time ON otp_attempts(at_ms);
