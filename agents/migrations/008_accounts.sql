-- People's accounts, the queues each agent serves, their web sessions and the
-- failed logins that lock a login or an address for a while.
--
-- Accounts are identities like API tokens (hotline/auth): the same roles, the
-- same audit log. The account rules and their SQL are agents/accounts/; the
-- sessions and the lockout are read and written by hotline/auth (sessions.py,
-- lockout.py). They share this one migration because a session belongs to an
-- account.

CREATE TABLE accounts (
    id             bigserial PRIMARY KEY,
    login          text NOT NULL UNIQUE CHECK (login ~ '^[a-z0-9][a-z0-9._-]{1,31}$'),
    name           text NOT NULL CHECK (name <> '' AND length(name) <= 64),
    -- The agent's desk phone (one of the departments' extensions, checked against the
    -- settings by the code). Not unique: shifts share desks. Admins may have none.
    extension      text CHECK (extension ~ '^[0-9]{2,8}$'),
    role           text NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    password_hash  text NOT NULL,        -- argon2id, PHC string
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (role = 'admin' OR extension IS NOT NULL)
);

-- The queues an agent serves, each with app_queue's penalty (lower is offered
-- first): their own department's queue, then general_queue as overflow.
CREATE TABLE account_queues (
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    queue       text NOT NULL,
    penalty     integer NOT NULL CHECK (penalty BETWEEN 0 AND 100),
    PRIMARY KEY (account_id, queue)
);

-- A browser's session. The cookie holds 32 random bytes; only their SHA-256 is
-- stored (like API tokens), so reading this table gives no usable session.
-- Ends at expires_at, or when last_seen_at is older than the idle timeout.
CREATE TABLE account_sessions (
    id            bigserial PRIMARY KEY,
    id_sha256     text NOT NULL UNIQUE,
    account_id    bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    address       text,
    user_agent    text
);

CREATE INDEX account_sessions_account ON account_sessions (account_id);
CREATE INDEX account_sessions_expires ON account_sessions (expires_at);

-- Failed logins, by the login typed (whether it exists or not, so a lockout
-- says nothing about which logins exist) and by address.
CREATE TABLE login_failures (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    login    text NOT NULL,
    address  text NOT NULL
);

CREATE INDEX login_failures_login ON login_failures (login, at DESC);
CREATE INDEX login_failures_address ON login_failures (address, at DESC);
