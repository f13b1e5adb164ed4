-- Catching up with what Asterisk wrote down while the bridge could not see it
-- (ivr/calls/catch_up.py): calls found in cdr-csv's Master.csv and in queue_log,
-- and recordings found in the monitor folder.

-- Where each file was read up to, per Asterisk host (each bridge reads its own
-- node's files). A file is known by its device and inode, plus the hash of its
-- first line (an inode can be reused by a new file); byte_offset always ends
-- just after a newline, so a line Asterisk is still writing is read next time.
CREATE TABLE asterisk_log_positions (
    node          text NOT NULL,        -- the host whose Asterisk wrote the file
    source        text NOT NULL CHECK (source IN ('queue_log', 'cdr_csv')),
    path          text NOT NULL,        -- as this service sees it
    device        bigint NOT NULL,
    inode         bigint NOT NULL,
    head_sha1     text NOT NULL,        -- sha1 of the first line ('' before there is one)
    byte_offset   bigint NOT NULL CHECK (byte_offset >= 0),
    lines_read    bigint NOT NULL DEFAULT 0,
    lines_skipped bigint NOT NULL DEFAULT 0,   -- garbage lines, logged and skipped
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node, source)
);

-- Which of Asterisk's own records made or completed a call the bridge did not
-- see whole: a comma-separated, sorted set of 'cdr_csv', 'queue_log' and
-- 'recording'. NULL: everything came from the bridge's own AMI session.
ALTER TABLE calls ADD COLUMN reconciled_from text;

-- call_outcomes is c.* plus the outcome: made again so it shows the new column.
DROP VIEW call_outcomes;
CREATE VIEW call_outcomes AS
SELECT c.*,
       CASE
           WHEN c.ended_at IS NULL AND c.lost_at IS NULL THEN 'in_progress'
           WHEN c.agent_answered_at IS NOT NULL THEN 'answered'
           WHEN c.abandoned_at IS NOT NULL THEN 'abandoned'
           WHEN c.queued_at IS NOT NULL THEN 'unanswered'
           WHEN c.lost_at IS NOT NULL THEN 'lost'
           ELSE 'ended_in_menu'
       END AS outcome
FROM calls c;
