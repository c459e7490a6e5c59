-- Ceremonies sealed in the ceremony cookie (src/http/sealed_ceremony.rs),
-- the default on PostgreSQL: the ids of those already verified, kept until
-- they expire, so each is used once on every instance. A key sign-in
-- records its id in the sign-in's own statement.
CREATE TABLE IF NOT EXISTS used_ceremonies (
    id         BYTEA  PRIMARY KEY,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS used_ceremonies_by_expiry ON used_ceremonies(expires_ms);
