-- Who may use the HTTP side, and what they saw or changed.
--
-- API tokens are for machines (wallboards, the 12345 platform's pulls, scripts):
-- 32 random bytes, shown once at creation, stored only as their SHA-256 (a token
-- is not a password: with 256 bits of entropy a fast hash cannot be brute-forced,
-- and every request can afford to check it). People's accounts (argon2 passwords,
-- sessions) come with the agents' console and use the same roles and audit log.

CREATE TABLE api_tokens (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL CHECK (name <> ''),
    role          text NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    token_sha256  text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL,
    revoked_at    timestamptz,
    revoked_by    text,
    last_used_at  timestamptz
);

-- Append-only: who (actor), did what (action), to what (subject), from where.
CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text NOT NULL,
    action    text NOT NULL,
    subject   text,
    address   text,
    detail    jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX audit_log_at ON audit_log (at DESC);
CREATE INDEX audit_log_actor ON audit_log (actor, at DESC);
CREATE INDEX audit_log_subject ON audit_log (subject, at DESC) WHERE subject IS NOT NULL;
