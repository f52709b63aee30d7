-- ACME: the account per directory, the certificate per set of names, the challenges being
-- answered and who is renewing. Shared by every instance that uses this store.
CREATE TABLE IF NOT EXISTS acme_accounts (
    directory   TEXT PRIMARY KEY,
    credentials TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS acme_certificates (
    name       TEXT PRIMARY KEY,
    cert_pem   TEXT NOT NULL,
    key_pem    TEXT NOT NULL,
    not_after  BIGINT NOT NULL,
    issued_at  BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE TABLE IF NOT EXISTS acme_challenges (
    token             TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,
    domain            TEXT NOT NULL,
    key_authorization TEXT NOT NULL,
    expires_at        BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS acme_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
