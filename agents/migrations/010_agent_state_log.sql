-- Every change of an agent's console state, for the console's timers and the
-- supervisors' reports (agents/board.py decides, the call writer's agent_states
-- sink writes). The current state of an agent is its latest row.
CREATE TABLE agent_state_log (
    id          bigserial PRIMARY KEY,
    -- The agent's account when the console knew it (the accounts table comes with
    -- its own migration; no foreign key here so either can be applied first).
    account_id  bigint,
    interface   text NOT NULL,                 -- the queue member, PJSIP/<extension>
    agent_name  text,
    from_state  text NOT NULL,
    to_state    text NOT NULL,
    -- The state's reason: the pause reason for paused, why the phone is gone for
    -- unavailable (unregistered, unreachable).
    reason      text,
    -- What made it change: login, logout, pause, unpause, offered, answered,
    -- ring_no_answer, call_ended, done, wrapup_max, resync, device, ...
    cause       text NOT NULL,
    uniqueid    text,                          -- the call (caller's Uniqueid) it is about
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agent_state_log_states CHECK (
        from_state IN ('offline', 'idle', 'ringing', 'in_call', 'wrap_up', 'paused', 'unavailable')
        AND to_state IN ('offline', 'idle', 'ringing', 'in_call', 'wrap_up', 'paused', 'unavailable'))
);

CREATE INDEX agent_state_log_interface ON agent_state_log (interface, occurred_at DESC, id DESC);
CREATE INDEX agent_state_log_account ON agent_state_log (account_id, occurred_at DESC)
    WHERE account_id IS NOT NULL;
CREATE INDEX agent_state_log_call ON agent_state_log (uniqueid) WHERE uniqueid IS NOT NULL;
