CREATE TABLE IF NOT EXISTS token_revocations (
    token_id   TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    revoked_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS token_revocations_revoked_at ON token_revocations (revoked_at);
