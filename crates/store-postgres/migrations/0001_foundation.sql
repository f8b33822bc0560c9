-- Organizations: each one is an OAuth client.
CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- The key ring: private keys sealed under the master key.
CREATE TABLE signing_keys (
    kid                 TEXT PRIMARY KEY,
    algorithm           TEXT NOT NULL,
    public_jwk          TEXT NOT NULL,
    sealed_private_key  BYTEA NOT NULL,
    created_at          BIGINT NOT NULL,
    signs_from          BIGINT NOT NULL
);

-- One row naming the newest key; rotations compare-and-swap it so concurrent rotations add one key.
CREATE TABLE key_ring_head (
    id          SMALLINT PRIMARY KEY CHECK (id = 1),
    newest_kid  TEXT
);
INSERT INTO key_ring_head (id, newest_kid) VALUES (1, NULL);
