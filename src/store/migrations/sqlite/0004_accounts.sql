-- Accounts (issue #10): passwords, session rows (list and end sessions, the
-- method each was made by), consecutive failed sign-ins (the lockout of the
-- fallback factors). TOTP secrets and the session-signing secret are stored
-- encrypted from now on (by the account service, above the store); rows
-- written before are encrypted on the next start.
CREATE TABLE IF NOT EXISTS account_passwords (
    user_handle BLOB    PRIMARY KEY NOT NULL REFERENCES users(handle) ON DELETE CASCADE,
    hash        TEXT    NOT NULL,
    updated_ms  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS account_sessions (
    id           BLOB    PRIMARY KEY NOT NULL,
    user_handle  BLOB    NOT NULL REFERENCES users(handle) ON DELETE CASCADE,
    method       TEXT    NOT NULL,
    created_ms   INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS account_sessions_by_user ON account_sessions(user_handle);
CREATE INDEX IF NOT EXISTS account_sessions_by_expiry ON account_sessions(expires_ms);

CREATE TABLE IF NOT EXISTS account_failures (
    user_handle BLOB    PRIMARY KEY NOT NULL,
    consecutive INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
);
