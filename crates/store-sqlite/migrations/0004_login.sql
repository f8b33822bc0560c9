-- Organizations gain a whitelist and settings (JSON: {"whitelist": [...], "settings": {...}}).
ALTER TABLE organizations ADD COLUMN config TEXT NOT NULL DEFAULT '{}';

-- Client secrets, sealed under the master key (the compat tokens are encrypted with them).
CREATE TABLE organization_secrets (
    organization_id  TEXT PRIMARY KEY REFERENCES organizations (id),
    sealed_secret    BLOB,
    sealed_staged    BLOB
) WITHOUT ROWID;

CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    email            TEXT NOT NULL,
    verified         INTEGER NOT NULL DEFAULT 0,
    blocked          INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    last_login_at    INTEGER,
    UNIQUE (organization_id, email)
) WITHOUT ROWID;

-- One row per /login request; the validated request is JSON.
CREATE TABLE login_flows (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    data             TEXT NOT NULL,
    expires_at       INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE login_attempts (
    id               TEXT PRIMARY KEY,
    flow_id          TEXT NOT NULL REFERENCES login_flows (id),
    organization_id  TEXT NOT NULL,
    email            TEXT NOT NULL,
    code_digest      TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    wrong_entries    INTEGER NOT NULL DEFAULT 0,
    closed_at        INTEGER
) WITHOUT ROWID;
CREATE INDEX login_attempts_by_flow ON login_attempts (flow_id, created_at);
CREATE INDEX login_attempts_by_email ON login_attempts (organization_id, email, created_at);

-- Login sessions (what the compat tokens name); the mutable part is JSON.
CREATE TABLE login_sessions (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    data             TEXT NOT NULL,
    ended_at         INTEGER
) WITHOUT ROWID;

CREATE TABLE authorization_codes (
    code_hash        TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL,
    session_id       TEXT NOT NULL REFERENCES login_sessions (id),
    redirect_uri     TEXT NOT NULL,
    code_challenge   TEXT,
    face             TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    used_at          INTEGER
) WITHOUT ROWID;

CREATE TABLE outbox (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    subject          TEXT NOT NULL,
    body             TEXT NOT NULL,
    created_at       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX outbox_by_time ON outbox (created_at);
