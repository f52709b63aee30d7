CREATE TABLE IF NOT EXISTS quota_usage (
    quota_key TEXT NOT NULL,
    period    TEXT NOT NULL,
    used      BIGINT NOT NULL,
    PRIMARY KEY (quota_key, period)
);
