-- A login session's user as a column, so a user's live sessions are one index lookup (the console lists
-- and ends them).
ALTER TABLE login_sessions ADD COLUMN user_id TEXT;
UPDATE login_sessions SET user_id = json_extract(data, '$.userId');
CREATE INDEX login_sessions_by_user ON login_sessions (user_id) WHERE ended_at IS NULL;
