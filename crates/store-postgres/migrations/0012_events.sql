-- Outbound events: endpoints (secrets sealed under the master key), the outbox (appended in the transaction
-- of the change that causes each event; `seq` is its order) and deliveries (one per event and endpoint).
CREATE TABLE event_endpoints (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    url              TEXT NOT NULL,
    description      TEXT NOT NULL,
    event_types      TEXT NOT NULL,
    enabled          BOOLEAN NOT NULL,
    sealed_secrets   BYTEA NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX event_endpoints_by_organization ON event_endpoints (organization_id, created_at);

CREATE TABLE events (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    organization_id  TEXT,
    event_type       TEXT NOT NULL,
    subject          TEXT NOT NULL,
    payload          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    dispatched       BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX events_undispatched ON events (seq) WHERE NOT dispatched;

CREATE TABLE event_deliveries (
    id               TEXT PRIMARY KEY,
    event_id         TEXT NOT NULL REFERENCES events (id),
    event_seq        BIGINT NOT NULL,
    event_type       TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL REFERENCES event_endpoints (id),
    organization_id  TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    last_attempt_at  BIGINT,
    last_status      INTEGER,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT
);
CREATE INDEX event_deliveries_pending ON event_deliveries (endpoint_id, event_seq) WHERE state = 'pending';
CREATE INDEX event_deliveries_log ON event_deliveries (organization_id, created_at);
