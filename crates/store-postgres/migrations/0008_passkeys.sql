-- Passkeys (WebAuthn credentials; the id is unique across organizations) and the server side of
-- unfinished ceremonies (single use, deleted when finished). `handed_over_at` marks a code attempt whose
-- browser went on to the application after the passkey step.
CREATE TABLE passkeys (
    credential_id    TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    user_id          TEXT NOT NULL REFERENCES users (id),
    name             TEXT NOT NULL,
    rp_id            TEXT NOT NULL,
    static_state     BYTEA NOT NULL,
    dynamic_state    BYTEA NOT NULL,
    sign_count       BIGINT NOT NULL,
    backup_eligible  BOOLEAN NOT NULL,
    backed_up        BOOLEAN NOT NULL,
    aaguid           TEXT,
    transports       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    last_used_at     BIGINT
);
CREATE INDEX passkeys_by_user ON passkeys (user_id, created_at);

CREATE TABLE passkey_ceremonies (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    flow_id          TEXT NOT NULL,
    organization_id  TEXT NOT NULL,
    user_id          TEXT,
    rp_id            TEXT NOT NULL,
    state            BYTEA NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX passkey_ceremonies_by_expiry ON passkey_ceremonies (expires_at);

ALTER TABLE login_attempts ADD COLUMN handed_over_at BIGINT;
