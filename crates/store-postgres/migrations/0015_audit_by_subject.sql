-- The audit log by subject (a user's page, the audit filters): one index walk, newest first.
CREATE INDEX audit_events_by_subject ON audit_events (organization_id, subject, created_at);
