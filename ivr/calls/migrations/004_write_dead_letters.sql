-- Rows the call writer could not store because PostgreSQL rejects their data
-- (a number out of range, a violated constraint, text it cannot hold), each on
-- its own: the rest of their batch was written. Nothing else ever lands here;
-- every other error is retried. ``payload`` is the row as the writer had it, in
-- the writer's JSON (ivr/calls/backlog.py), so it can be corrected and replayed:
--   python -m ivr.calls.dead_letters list | replay [ID ...]
CREATE TABLE write_dead_letters (
    id          bigserial PRIMARY KEY,
    failed_at   timestamptz NOT NULL DEFAULT now(),
    kind        text NOT NULL CHECK (kind IN ('call', 'timeline', 'recording', 'sink', 'empty')),
    sink        text,               -- the feature's sink, for kind 'sink' (e.g. queue_members, recordings)
    linkedid    text,               -- the call it belongs to, where known
    payload     text NOT NULL,      -- JSON (text, not jsonb: it must hold whatever was refused)
    error       text NOT NULL,
    error_class text NOT NULL,      -- e.g. NumericValueOutOfRangeError
    sqlstate    text,               -- e.g. 22003 (22000: asyncpg refused it before sending)
    replayed_at timestamptz         -- set by a replay (a row failing again gets a new entry)
);

CREATE INDEX write_dead_letters_waiting ON write_dead_letters (id) WHERE replayed_at IS NULL;
CREATE INDEX write_dead_letters_linkedid ON write_dead_letters (linkedid) WHERE linkedid IS NOT NULL;
