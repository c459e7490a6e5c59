-- Fallback factors: authenticator-app TOTP, recovery codes, sign-in attempts.
-- The TOTP secret is stored raw (the server has no encryption key option);
-- recovery codes only as Argon2id hashes.
CREATE TABLE IF NOT EXISTS otp_totp (
    user_handle  BLOB    PRIMARY KEY NOT NULL REFERENCES users(handle) ON DELETE CASCADE,
    secret       BLOB    NOT NULL,
    algorithm    TEXT    NOT NULL,
    digits       INTEGER NOT NULL,
    period       INTEGER NOT NULL,
    created_ms   INTEGER NOT NULL,
    last_step    INTEGER,
    last_used_ms INTEGER
);

CREATE TABLE IF NOT EXISTS otp_totp_pending (
    user_handle  BLOB    PRIMARY KEY NOT NULL REFERENCES users(handle) ON DELETE CASCADE,
    secret       BLOB    NOT NULL,
    algorithm    TEXT    NOT NULL,
    digits       INTEGER NOT NULL,
    period       INTEGER NOT NULL,
    created_ms   INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS otp_recovery_codes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_handle BLOB    NOT NULL REFERENCES users(handle) ON DELETE CASCADE,
    hash        TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS otp_recovery_by_user ON otp_recovery_codes(user_handle);

CREATE TABLE IF NOT EXISTS otp_attempts (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT    NOT NULL,
    at_ms   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS otp_attempts_by_subject ON otp_attempts(subject, at_ms);
CREATE INDEX IF NOT EXISTS otp_attempts_by_time ON otp_attempts(at_ms);
