-- Login attempts of every type: code, challenge (three numbers) and links (local, remote, userPick),
-- with the approval of the starting browser, the session the attempt created, and undo.
ALTER TABLE login_attempts ADD COLUMN kind TEXT NOT NULL DEFAULT 'code';
ALTER TABLE login_attempts ADD COLUMN challenge SMALLINT;
ALTER TABLE login_attempts ADD COLUMN approved_at BIGINT;
ALTER TABLE login_attempts ADD COLUMN session_id TEXT;
ALTER TABLE login_attempts ADD COLUMN undone_at BIGINT;
