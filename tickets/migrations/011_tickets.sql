-- Tickets: the cases nobody could resolve on the call (tickets/). States, sources and
-- the moves between them are defined in tickets/model.py; the checks here repeat the
-- names so a stray write cannot invent one. Nothing in these tables is ever deleted:
-- a trigger refuses DELETE and TRUNCATE, and a ticket's timeline refuses UPDATE too.

CREATE TABLE tickets (
    id                  bigserial PRIMARY KEY,
    number              text GENERATED ALWAYS AS ('GD' || lpad(id::text, 8, '0')) STORED UNIQUE,
    source              text NOT NULL CHECK (source IN
                            ('disposition', 'survey', 'abandoned', 'unplaced_question', 'manual')),
    state               text NOT NULL DEFAULT 'to_verify' CHECK (state IN
                            ('to_verify', 'in_progress', 'answered', 'follow_up', 'closed', 'reopened',
                             'dispatched_12345')),
    -- The call (calls.linkedid). No foreign key: a trigger may run before the call
    -- writer's batch holding the call row commits; a manual ticket may have no call.
    linkedid            text,
    caller_number       text,
    department          text,             -- a department code of hotline.toml
    -- The agent's account (accounts.id, migration 008 on the accounts branch). No
    -- foreign key yet, so either migration can be applied first; add it once both are in.
    assignee_account_id bigint,
    subject             text NOT NULL CHECK (subject <> ''),
    description         text NOT NULL DEFAULT '',
    reason              text,             -- why it was opened: 未解决, 不满意, waited 95 s, ...
    callback            boolean NOT NULL DEFAULT false,   -- the caller is to be called back
    knowledge_gap       boolean NOT NULL DEFAULT false,   -- 知识库缺失: an answer is to be added
    unplaced_question_id bigint REFERENCES unplaced_questions (id),
    knowledge_item_id   text,             -- the knowledge item that closed the gap
    survey_rating       text,             -- the caller's last survey answer about it
    opened_by           text NOT NULL,    -- who: token:1:name, account:7, system:abandoned, ...
    opened_at           timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    -- Deadlines of the current round (a reopen starts a new one; the timeline keeps the old)
    -- and when each was met.
    verify_due          timestamptz NOT NULL,
    verified_at         timestamptz,
    answer_due          timestamptz NOT NULL,
    answered_at         timestamptz,
    knowledge_due       timestamptz,
    knowledge_done_at   timestamptz,
    escalated_at        timestamptz,      -- first time a deadline passed unmet
    reopened_count      integer NOT NULL DEFAULT 0,
    dispatched_at       timestamptz,
    closed_at           timestamptz
);

CREATE INDEX tickets_opened_at ON tickets (opened_at DESC, id DESC);
CREATE INDEX tickets_linkedid ON tickets (linkedid) WHERE linkedid IS NOT NULL;
CREATE INDEX tickets_assignee ON tickets (assignee_account_id, state) WHERE assignee_account_id IS NOT NULL;
CREATE INDEX tickets_open ON tickets (state, department) WHERE state <> 'closed';
-- The automatic triggers may see a call twice (a replay, two processes, the start-up
-- reconciliation): one callback / knowledge-gap ticket per call.
CREATE UNIQUE INDEX tickets_one_automatic_per_call ON tickets (linkedid)
    WHERE linkedid IS NOT NULL AND source IN ('abandoned', 'unplaced_question');

-- Every change of a ticket, append-only: who, when, why.
CREATE TABLE ticket_events (
    id          bigserial PRIMARY KEY,
    ticket_id   bigint NOT NULL REFERENCES tickets (id),
    at          timestamptz NOT NULL DEFAULT now(),
    kind        text NOT NULL,    -- opened, transition, assigned, deadline.reminder, deadline.escalated, dispatch.*, ...
    from_state  text,
    to_state    text,
    actor       text NOT NULL,
    reason      text,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, at, id);

-- Reminders and escalations, as rows so they survive restarts and any number of
-- `hotline` processes share them: a worker claims due rows with FOR UPDATE SKIP
-- LOCKED and marks them fired in the same transaction (only one fires each).
CREATE TABLE ticket_timers (
    id           bigserial PRIMARY KEY,
    ticket_id    bigint NOT NULL REFERENCES tickets (id),
    deadline     text NOT NULL CHECK (deadline IN ('verify', 'answer', 'knowledge')),
    action       text NOT NULL CHECK (action IN ('remind', 'escalate')),
    due_at       timestamptz NOT NULL,
    deadline_at  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    fired_at     timestamptz,
    fired_by     text,             -- the process (hub origin) that fired it
    cancelled_at timestamptz,      -- the deadline was met, moved or paused first
    CHECK (fired_at IS NULL OR cancelled_at IS NULL)
);

CREATE INDEX ticket_timers_pending ON ticket_timers (due_at) WHERE fired_at IS NULL AND cancelled_at IS NULL;
CREATE INDEX ticket_timers_ticket ON ticket_timers (ticket_id);

-- The 12345 outbox: each dispatch is one row written in the transaction that moves
-- the ticket to dispatched_12345, then POSTed by a worker with its idempotency key
-- until the platform answers (leased, so a worker that dies hands it on).
CREATE TABLE ticket_dispatches (
    id               bigserial PRIMARY KEY,
    ticket_id        bigint NOT NULL REFERENCES tickets (id),
    idempotency_key  text NOT NULL UNIQUE,
    payload          jsonb NOT NULL,           -- exactly what is sent, fixed when queued
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN
                         ('pending', 'accepted', 'rejected', 'answered', 'failed')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    leased_until     timestamptz,
    leased_by        text,
    last_attempt_at  timestamptz,
    last_error       text,
    delivered_at     timestamptz,              -- the platform's first answer
    external_id      text,                     -- the platform's case number
    result           text,                     -- its answer (rejection reason, solution)
    answered_at      timestamptz               -- its result arrived
);

CREATE INDEX ticket_dispatches_due ON ticket_dispatches (next_attempt_at) WHERE status = 'pending';
CREATE INDEX ticket_dispatches_ticket ON ticket_dispatches (ticket_id);
CREATE UNIQUE INDEX ticket_dispatches_external ON ticket_dispatches (external_id) WHERE external_id IS NOT NULL;

CREATE FUNCTION tickets_keep_everything() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is not allowed: tickets and their history are never removed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END
$$;

-- Statement triggers: even a DELETE that matches no row is refused, so a mistake
-- shows at once rather than on the day it would have removed something.
CREATE TRIGGER tickets_keep_everything BEFORE DELETE OR TRUNCATE ON tickets
    FOR EACH STATEMENT EXECUTE FUNCTION tickets_keep_everything();
CREATE TRIGGER ticket_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ticket_events
    FOR EACH STATEMENT EXECUTE FUNCTION tickets_keep_everything();
CREATE TRIGGER ticket_timers_keep_everything BEFORE DELETE OR TRUNCATE ON ticket_timers
    FOR EACH STATEMENT EXECUTE FUNCTION tickets_keep_everything();
CREATE TRIGGER ticket_dispatches_keep_everything BEFORE DELETE OR TRUNCATE ON ticket_dispatches
    FOR EACH STATEMENT EXECUTE FUNCTION tickets_keep_everything();
