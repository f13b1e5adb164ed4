-- The agents' console: how each answered call ended for the caller, in the words
-- of the agent who answered it (已解决 / 未解决 / 来电人不满意), with a note and the
-- knowledge item used. Unresolved and unsatisfied calls are what the tickets
-- feature opens tickets from (it follows the call.disposed timeline rows).
CREATE TABLE call_dispositions (
    id                 bigserial PRIMARY KEY,
    -- The call (calls.linkedid). No foreign key: the call's row is written by the
    -- batched writer and may land after this one during a database outage.
    linkedid           text NOT NULL,
    uniqueid           text,                 -- the caller's channel the agent answered
    account_id         bigint NOT NULL REFERENCES accounts (id),
    agent_interface    text NOT NULL,        -- PJSIP/<extension>
    agent_name         text NOT NULL,
    outcome            text NOT NULL CHECK (outcome IN ('resolved', 'unresolved', 'unsatisfied')),
    note               text NOT NULL DEFAULT '' CHECK (length(note) <= 2000),
    -- The knowledge item the agent answered from. No foreign key: `hotline knowledge
    -- seed` replaces items; the question as it was is kept beside its id.
    knowledge_item_id  text,
    knowledge_question text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    -- One disposition per agent and call; a correction replaces it (each one audited).
    UNIQUE (linkedid, account_id)
);

CREATE INDEX call_dispositions_not_resolved ON call_dispositions (updated_at)
    WHERE outcome <> 'resolved';
CREATE INDEX call_dispositions_account ON call_dispositions (account_id, created_at DESC);

-- agent_state_log (010) came before accounts had a migration of their own to point
-- at; now both exist. A state row keeps its agent's account; an account removed
-- later leaves its log rows without one.
UPDATE agent_state_log SET account_id = NULL
WHERE account_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = agent_state_log.account_id);
ALTER TABLE agent_state_log ADD CONSTRAINT agent_state_log_account_fkey
    FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE SET NULL;
