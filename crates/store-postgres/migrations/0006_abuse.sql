-- Rate-limit counters (one row per bucket and window) and the audit log of security events.
CREATE TABLE rate_limits (
    bucket        TEXT NOT NULL,
    window_start  BIGINT NOT NULL,
    hits          INTEGER NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX rate_limits_by_window ON rate_limits (window_start);

CREATE TABLE audit_events (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL,
    kind             TEXT NOT NULL,
    subject          TEXT,
    detail           JSONB NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX audit_events_by_organization ON audit_events (organization_id, created_at);

-- Spent captcha solutions (their challenge's signature), kept until the challenge expires.
CREATE TABLE captcha_solutions (
    signature   TEXT PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);
