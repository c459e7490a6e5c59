-- Session rows keyed by their id alone (WITHOUT ROWID): ids sort by time,
-- so a sign-in's insert lands at the end of one B-tree instead of two (the
-- rowid table and the index of ids). The rows are copied as they are.
CREATE TABLE account_sessions_by_id (
    id           BLOB    PRIMARY KEY NOT NULL,
    user_handle  BLOB    NOT NULL REFERENCES users(handle) ON DELETE CASCADE,
    method       TEXT    NOT NULL,
    created_ms   INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO account_sessions_by_id (id, user_handle, method, created_ms, last_seen_ms, expires_ms)
    SELECT id, user_handle, method, created_ms, last_seen_ms, expires_ms FROM account_sessions;
DROP TABLE account_sessions;
ALTER TABLE account_sessions_by_id RENAME TO account_sessions;
CREATE INDEX IF NOT EXISTS account_sessions_by_expiry ON account_sessions(expires_ms);
