-- The telephony side of tickets (tickets/): the satisfaction survey's answers on the
-- call, the callback a caller asks for in the queue, and the calls the hotline places
-- (callbacks and the 回访 survey call), one row per attempt, worked like the timers.

-- A caller who asks in the queue to be called back (tickets/callback_offer.py).
ALTER TABLE tickets DROP CONSTRAINT tickets_source_check;
ALTER TABLE tickets ADD CONSTRAINT tickets_source_check CHECK (source IN
    ('disposition', 'survey', 'abandoned', 'unplaced_question', 'manual', 'callback_request'));
-- The number the caller confirmed or keyed for the callback (caller_number is the
-- caller ID the call came with).
ALTER TABLE tickets ADD COLUMN callback_number text CHECK (callback_number ~ '^[0-9]{5,20}$');

-- One automatic ticket per call, the callback request among them (tickets/model.py
-- AUTOMATIC_SOURCES; tickets/store.py repeats the list in its ON CONFLICT).
DROP INDEX tickets_one_automatic_per_call;
CREATE UNIQUE INDEX tickets_one_automatic_per_call ON tickets (linkedid)
    WHERE linkedid IS NOT NULL AND source IN ('abandoned', 'unplaced_question', 'callback_request');

-- The satisfaction survey, on the call it was asked on: after the agent hung up
-- (after_call) or on the hotline's 回访 call about a ticket (follow_up). A caller who
-- pressed nothing or hung up is a row too.
CREATE TABLE call_surveys (
    id          bigserial PRIMARY KEY,
    linkedid    text NOT NULL,        -- the call the question was asked on (calls.linkedid)
    uniqueid    text NOT NULL,        -- the caller's channel
    kind        text NOT NULL CHECK (kind IN ('after_call', 'follow_up')),
    ticket_id   bigint REFERENCES tickets (id),   -- the ticket it is about, if any
    outcome     text NOT NULL CHECK (outcome IN ('rated', 'no_key', 'hung_up', 'failed')),
    rating      text CHECK (rating IN ('满意', '基本满意', '不满意')),
    key         text,                 -- the key that gave the rating
    asked       integer NOT NULL,     -- how often the question was played
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((outcome = 'rated') = (rating IS NOT NULL)),
    UNIQUE (linkedid, uniqueid, kind)
);

CREATE INDEX call_surveys_finished ON call_surveys (finished_at DESC);
CREATE INDEX call_surveys_ticket ON call_surveys (ticket_id) WHERE ticket_id IS NOT NULL;

-- Calls the hotline places about a ticket: a callback (the caller, then the agent's
-- phone or the queue) or the 回访 survey call. One row per attempt: a due row is
-- claimed with FOR UPDATE SKIP LOCKED and leased while its Originate is out; the
-- OriginateResponse (matched by action_id) settles it and, unless answered, adds the
-- next attempt while attempts remain. A lease that runs out (the process died with
-- the Originate out) settles the row as lost and is retried the same way.
CREATE TABLE ticket_calls (
    id              bigserial PRIMARY KEY,
    ticket_id       bigint NOT NULL REFERENCES tickets (id),
    purpose         text NOT NULL CHECK (purpose IN ('callback', 'follow_up')),
    number          text NOT NULL CHECK (number ~ '^[0-9]{5,20}$'),
    extension       text,              -- the agent's phone rung once the caller answers
    queue           text,              -- else (or when it does not answer) this queue
    attempt         integer NOT NULL CHECK (attempt >= 1),
    due_at          timestamptz NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN
                        ('pending', 'dialing', 'answered', 'failed', 'cancelled')),
    requested_by    text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    action_id       text UNIQUE,       -- the Originate's ActionID, set when sent
    leased_until    timestamptz,
    leased_by       text,
    sent_at         timestamptz,
    settled_at      timestamptz,
    response        text,              -- OriginateResponse's Response (Success / Failure)
    reason_code     integer,           -- its Reason (4 answered, 5 busy, 3 no answer, 8 congestion, ...)
    result          text,              -- answered, busy, no_answer, congestion, hung_up, failed, not_sent, lost
    detail          jsonb NOT NULL DEFAULT '{}'::jsonb    -- Channel, Uniqueid, the error
);

-- A ticket has at most one call of each purpose waiting or ringing.
CREATE UNIQUE INDEX ticket_calls_one_open ON ticket_calls (ticket_id, purpose) WHERE state IN ('pending', 'dialing');

CREATE INDEX ticket_calls_due ON ticket_calls (due_at) WHERE state = 'pending';
CREATE INDEX ticket_calls_dialing ON ticket_calls (leased_until) WHERE state = 'dialing';
CREATE INDEX ticket_calls_ticket ON ticket_calls (ticket_id, id);

CREATE TRIGGER call_surveys_keep_everything BEFORE DELETE OR TRUNCATE ON call_surveys
    FOR EACH STATEMENT EXECUTE FUNCTION tickets_keep_everything();
CREATE TRIGGER ticket_calls_keep_everything BEFORE DELETE OR TRUNCATE ON ticket_calls
    FOR EACH STATEMENT EXECUTE FUNCTION tickets_keep_everything();
