-- The index of session rows by user moves into the SQLite store's memory
-- (src/store/session_index.rs): on disk, every sign-in wrote a page of it
-- at a place of its own. PostgreSQL keeps its index.
DROP INDEX IF EXISTS account_sessions_by_user;
