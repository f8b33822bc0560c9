-- Rate limits shared by every instance: the 429 strike count and block per account, and the next free send
-- slot (microseconds since the epoch) per account and scope ('' for the account, else a method name) under a
-- configured limit.
ALTER TABLE connector_accounts ADD COLUMN rate_strikes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE connector_accounts ADD COLUMN rate_blocked_until BIGINT;

CREATE TABLE connector_send_slots (
    organization_id  TEXT NOT NULL,
    account_id       TEXT NOT NULL,
    scope            TEXT NOT NULL,
    next_at_micros   BIGINT NOT NULL,
    PRIMARY KEY (organization_id, account_id, scope),
    FOREIGN KEY (organization_id, account_id) REFERENCES connector_accounts (organization_id, id) ON DELETE CASCADE
);
