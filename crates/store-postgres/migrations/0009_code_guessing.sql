-- The client network that asked for each login attempt: the per-email delay counts per network, so a
-- third party's steps never make the owner wait. Attempts made before this migration have none.
ALTER TABLE login_attempts ADD COLUMN network TEXT NOT NULL DEFAULT '';

-- Consecutive wrong login codes per account (organization and normalised email, known or not), across
-- attempts, flows and networks; a login deletes the row.
CREATE TABLE code_failures (
    organization_id  TEXT NOT NULL,
    email            TEXT NOT NULL,
    failures         INTEGER NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (organization_id, email)
);
