-- Organizations: each one is an OAuth client.
CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- The key ring: private keys sealed under the master key.
CREATE TABLE signing_keys (
    kid                 TEXT PRIMARY KEY,
    algorithm           TEXT NOT NULL,
    public_jwk          TEXT NOT NULL,
    sealed_private_key  BLOB NOT NULL,
    created_at          INTEGER NOT NULL,
    signs_from          INTEGER NOT NULL
) WITHOUT ROWID;

-- One row naming the newest key; rotations compare-and-swap it so concurrent rotations add one key.
CREATE TABLE key_ring_head (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    newest_kid  TEXT
);
INSERT INTO key_ring_head (id, newest_kid) VALUES (1, NULL);
