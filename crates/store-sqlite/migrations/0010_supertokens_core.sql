-- The SuperTokens core face. Each organization used as an app has its own key ring, so the JWKS of one
-- app publishes none of another's keys; the head row makes concurrent first keys and rotations add one key.
CREATE TABLE organization_signing_keys (
    organization_id     TEXT NOT NULL REFERENCES organizations (id),
    kid                 TEXT NOT NULL,
    algorithm           TEXT NOT NULL,
    public_jwk          TEXT NOT NULL,
    sealed_private_key  BLOB NOT NULL,
    created_at          INTEGER NOT NULL,
    signs_from          INTEGER NOT NULL,
    PRIMARY KEY (organization_id, kid)
) WITHOUT ROWID;

CREATE TABLE organization_key_ring_heads (
    organization_id  TEXT PRIMARY KEY REFERENCES organizations (id),
    newest_kid       TEXT NOT NULL
) WITHOUT ROWID;

-- A session's server-side data (SuperTokens' `userDataInDatabase`), never put in a token.
ALTER TABLE sessions ADD COLUMN data TEXT NOT NULL DEFAULT '{}';
