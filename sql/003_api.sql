-- The pull APIs: API keys, the directory (users, groups, company numbers) and the indexes
-- that keep a page of calls fast on millions of rows.

-- API keys: only a hash is kept; the key is shown once, when it is made.
CREATE TABLE api_keys (
    id           bigserial   PRIMARY KEY,
    pbx_id       text        NOT NULL,
    name         text        NOT NULL,
    prefix       text        NOT NULL UNIQUE,          -- the key's public part: finds the row
    secret_hash  bytea       NOT NULL,                 -- sha256 of the whole key
    networks     cidr[]      NOT NULL DEFAULT '{}',    -- allowed client networks; {} = any
    dialects     text[]      NOT NULL DEFAULT '{}',    -- allowed dialects; {} = all
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    UNIQUE (pbx_id, name)
);

-- Employees. `login` is what webhooks carry as `user`; `ext` their extension.
CREATE TABLE directory_users (
    pbx_id     text        NOT NULL,
    login      text        NOT NULL,
    name       text        NOT NULL DEFAULT '',
    ext        text        NOT NULL DEFAULT '',
    telnum     text        NOT NULL DEFAULT '',        -- direct number, E.164 digits
    mobile     text        NOT NULL DEFAULT '',
    email      text        NOT NULL DEFAULT '',
    position   text        NOT NULL DEFAULT '',
    source     text        NOT NULL DEFAULT 'pbx',     -- pbx (learnt from Asterisk) / config / api
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pbx_id, login)
);
CREATE UNIQUE INDEX directory_users_ext ON directory_users (pbx_id, ext) WHERE ext <> '';

-- Ring groups and queues.
CREATE TABLE directory_groups (
    id         bigserial   PRIMARY KEY,
    pbx_id     text        NOT NULL,
    kind       text        NOT NULL,                   -- ringgroup / queue
    name       text        NOT NULL,                   -- what history's groupRealName says
    ext        text        NOT NULL DEFAULT '',        -- its number, or the queue's name
    strategy   text        NOT NULL DEFAULT 'ringall',
    ring_time  integer     NOT NULL DEFAULT 20,        -- seconds
    members    text[]      NOT NULL DEFAULT '{}',      -- logins
    source     text        NOT NULL DEFAULT 'pbx',
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (pbx_id, kind, ext)
);

-- Company numbers (DIDs) and where their calls go.
CREATE TABLE company_numbers (
    pbx_id     text        NOT NULL,
    telnum     text        NOT NULL,                   -- E.164 digits
    name       text        NOT NULL DEFAULT '',
    route_type text        NOT NULL DEFAULT '',        -- user / group / ivr / '' (unrouted)
    route_to   text        NOT NULL DEFAULT '',        -- a login, a group id, an IVR name
    ivr        jsonb       NOT NULL DEFAULT '[]',      -- [{"button": "1", "group": id}, ...]
    source     text        NOT NULL DEFAULT 'config',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pbx_id, telnum)
);

-- Pages of calls: newest first (keyset on started_at, callid), per employee, per company
-- number, per group; the employees who took part in a call (user/queue/group calls).
DROP INDEX calls_started_idx;
CREATE INDEX calls_page_idx ON calls (pbx_id, started_at DESC, callid DESC);
CREATE INDEX calls_user_idx ON calls (pbx_id, user_login, started_at DESC) WHERE user_login <> '';
CREATE INDEX calls_diversion_idx ON calls (pbx_id, diversion, started_at DESC);
CREATE INDEX calls_group_idx ON calls (pbx_id, group_name, started_at DESC) WHERE group_name <> '';
CREATE INDEX call_events_user_idx ON call_events (pbx_id, user_login, at DESC);
