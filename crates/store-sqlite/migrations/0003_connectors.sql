-- Connector accounts: credentials are sealed by the connector runtime (master key, context = account id).
CREATE TABLE connector_accounts (
    organization_id     TEXT NOT NULL REFERENCES organizations (id),
    id                  TEXT NOT NULL,
    connector           TEXT NOT NULL,
    sealed_credentials  BLOB NOT NULL,
    version             INTEGER NOT NULL,
    state               TEXT NOT NULL,
    cooldown_until      INTEGER,
    last_failure        TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (organization_id, id)
) WITHOUT ROWID;

-- Cross-instance single-flight for credential refreshes.
CREATE TABLE connector_leases (
    key         TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
