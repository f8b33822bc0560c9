-- Connector script storage (`cyclr_storage_*`, `cycle_storage_*`): JSON values per organization, scope and key.
CREATE TABLE connector_storage (
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    scope            TEXT NOT NULL,
    key              TEXT NOT NULL,
    value            TEXT NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (organization_id, scope, key)
) WITHOUT ROWID;
