-- Organization API keys: only the SHA-256 of the secret is kept.
CREATE TABLE api_keys (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    secret_hash      TEXT NOT NULL UNIQUE,
    created_at       INTEGER NOT NULL,
    revoked_at       INTEGER
) WITHOUT ROWID;

-- Sessions: one row per refresh-token family. Refresh tokens are kept only as H2 hashes.
CREATE TABLE sessions (
    handle           TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    user_id          TEXT NOT NULL,
    tenant_id        TEXT NOT NULL,
    payload          TEXT NOT NULL,
    current_hashes   TEXT NOT NULL,
    previous_hash    TEXT,
    rotated_at       INTEGER,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    revoked_at       INTEGER
) WITHOUT ROWID;
CREATE INDEX sessions_by_user ON sessions (organization_id, user_id);
CREATE INDEX sessions_by_revocation ON sessions (organization_id, revoked_at) WHERE revoked_at IS NOT NULL;
