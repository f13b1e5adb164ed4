-- The knowledge base the agents and the voice menu answer from, and the questions
-- the voice menu could not place (for the editors: "questions nobody could answer
-- get an answer added within 5 working days").
-- The files in config/knowledge/ are the editors' source; knowledge/store.py
-- replaces these rows from them. Department codes are those of hotline.toml (no
-- table here: the settings are the one place that lists departments).

CREATE TABLE knowledge_items (
    id           text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_]*([.-][a-z0-9_]+)*$'),
    department   text NOT NULL,
    question     text NOT NULL CHECK (question <> ''),
    answer       text NOT NULL CHECK (answer <> ''),   -- short and speakable
    procedure    text[] NOT NULL DEFAULT '{}',         -- steps, in order
    materials    text[] NOT NULL DEFAULT '{}',         -- required materials
    keywords     text[] NOT NULL DEFAULT '{}',         -- what callers say for it
    self_service boolean NOT NULL DEFAULT false,       -- the answer may be played to callers
    overview     boolean NOT NULL DEFAULT false,       -- describes the whole department
    position     integer NOT NULL DEFAULT 0,           -- order within its department's file
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX knowledge_items_department ON knowledge_items (department, position);
CREATE INDEX knowledge_items_keywords ON knowledge_items USING gin (keywords);

CREATE TABLE unplaced_questions (
    id                    bigserial PRIMARY KEY,
    text                  text NOT NULL,                 -- what the recogniser heard
    transcript_confidence real CHECK (transcript_confidence BETWEEN 0 AND 1),
    -- The call (calls.linkedid). No foreign key: the call's row is written by the
    -- batched writer and may land after this one; questions from tools have none.
    linkedid              text,
    decision              jsonb NOT NULL DEFAULT '{}'::jsonb,   -- the router's explanation
    status                text NOT NULL DEFAULT 'new'
                          CHECK (status IN ('new', 'in_progress', 'answered', 'dismissed')),
    knowledge_item_id     text REFERENCES knowledge_items (id) ON DELETE SET NULL,  -- the answer added
    note                  text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX unplaced_questions_open ON unplaced_questions (created_at) WHERE status IN ('new', 'in_progress');
CREATE INDEX unplaced_questions_linkedid ON unplaced_questions (linkedid) WHERE linkedid IS NOT NULL;
