-- The development outbox by recipient (`GET /dev/outbox?to=`): one index walk, newest first.
CREATE INDEX outbox_by_recipient ON outbox (recipient, created_at);
