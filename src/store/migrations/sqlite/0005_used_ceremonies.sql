-- Ceremonies sealed in the ceremony cookie (src/http/sealed_ceremony.rs):
-- the ids of those already verified, kept until they expire, so each is
-- used once. A key sign-in records its id in the sign-in's own write.
CREATE TABLE IF NOT EXISTS used_ceremonies (
    id         BLOB    PRIMARY KEY NOT NULL,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS used_ceremonies_by_expiry ON used_ceremonies(expires_ms);
