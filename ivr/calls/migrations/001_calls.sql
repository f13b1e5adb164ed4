-- Calls, their timelines and their recordings, as seen through AMI.
-- A call is keyed by the Linkedid of the caller's channel: every leg (agent,
-- transfer target, spy) shares it, and it stays unique across Asterisk restarts
-- (channel names and sequence numbers do not).

CREATE TABLE calls (
    linkedid          text PRIMARY KEY,
    caller_channel    text,
    caller_number     text,
    caller_name       text,
    dialed_number     text,
    started_at        timestamptz NOT NULL,
    menu_started_at   timestamptz,
    department        text,
    queue             text,
    queued_at         timestamptz,
    abandoned_at      timestamptz,
    agent_interface   text,
    agent_name        text,
    agent_answered_at timestamptz,
    hold_seconds      integer,
    talk_seconds      integer,
    ended_at          timestamptz,
    hangup_cause      integer,
    hangup_cause_text text,
    lost_at           timestamptz,      -- the bridge found it gone after a reconnect
    recording_path    text,             -- MIXMONITOR_FILENAME as Asterisk wrote it
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX calls_started_at ON calls (started_at DESC);
CREATE INDEX calls_caller_number ON calls (caller_number, started_at DESC);
CREATE INDEX calls_open ON calls (linkedid) WHERE ended_at IS NULL;

-- What happened to a call, in order. dedupe_key makes replayed or duplicated
-- AMI events (after a reconnect) land once.
CREATE TABLE call_events (
    id          bigserial PRIMARY KEY,
    linkedid    text NOT NULL REFERENCES calls (linkedid) ON DELETE CASCADE,
    uniqueid    text,
    occurred_at timestamptz NOT NULL,
    kind        text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    dedupe_key  text NOT NULL UNIQUE
);

CREATE INDEX call_events_timeline ON call_events (linkedid, occurred_at, id);

CREATE TABLE recordings (
    id               bigserial PRIMARY KEY,
    linkedid         text NOT NULL REFERENCES calls (linkedid) ON DELETE CASCADE,
    uniqueid         text NOT NULL,
    asterisk_path    text NOT NULL UNIQUE,
    local_path       text NOT NULL,
    status           text NOT NULL CHECK (status IN ('ok', 'empty', 'missing', 'unreadable')),
    bytes            bigint,
    duration_seconds numeric(10, 3),
    sha256           text,
    problem          text,
    registered_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX recordings_linkedid ON recordings (linkedid);

-- Live membership of the department queues, rebuilt from QueueStatus on every
-- (re)connect and kept current from queue member events.
CREATE TABLE queue_members (
    queue         text NOT NULL,
    interface     text NOT NULL,
    member_name   text,
    paused        boolean NOT NULL DEFAULT false,
    paused_reason text,
    status        integer,
    calls_taken   integer,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, interface)
);

-- How each call ended, derived from the facts above so it can never disagree with them.
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
