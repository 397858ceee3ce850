-- Calls, their legs (one per channel that took part) and their CRM events.
-- Every row carries the [pbx] id: many PBXs can share one database.

CREATE TABLE calls (
    pbx_id       text        NOT NULL,
    callid       text        NOT NULL,             -- Asterisk Linkedid of the call
    direction    text        NOT NULL,             -- in / out / internal
    status       text,                             -- NULL while the call is up
    phone        text        NOT NULL DEFAULT '',  -- the customer, E.164 digits
    diversion    text        NOT NULL DEFAULT '',  -- the company number (DID)
    ext          text        NOT NULL DEFAULT '',
    user_login   text        NOT NULL DEFAULT '',
    group_name   text        NOT NULL DEFAULT '',
    started_at   timestamptz NOT NULL,
    answered_at  timestamptz,
    ended_at     timestamptz,
    duration     integer     NOT NULL DEFAULT 0,   -- conversation, seconds
    wait         integer     NOT NULL DEFAULT 0,   -- until answer or end, seconds
    recording    text        NOT NULL DEFAULT '',
    closed_by    text,                             -- hangup / resync
    rating       smallint,
    missed_status smallint,                        -- 2: an outbound call back to a missed caller
    PRIMARY KEY (pbx_id, callid)
);
CREATE INDEX calls_started_idx ON calls (pbx_id, started_at DESC);
CREATE INDEX calls_phone_idx ON calls (pbx_id, phone, started_at DESC);
CREATE INDEX calls_open_idx ON calls (pbx_id) WHERE status IS NULL;

CREATE TABLE call_legs (
    pbx_id       text        NOT NULL,
    uniqueid     text        NOT NULL,
    callid       text        NOT NULL,
    channel      text        NOT NULL,
    kind         text        NOT NULL,             -- trunk / extension / local / other
    ext          text        NOT NULL DEFAULT '',
    started_at   timestamptz NOT NULL,
    answered_at  timestamptz,
    ended_at     timestamptz,
    cause        integer,
    dial_status  text        NOT NULL DEFAULT '',
    PRIMARY KEY (pbx_id, uniqueid)
);
CREATE INDEX call_legs_call_idx ON call_legs (pbx_id, callid);

CREATE TABLE call_events (
    pbx_id        text        NOT NULL,
    callid        text        NOT NULL,
    seq           integer     NOT NULL,            -- order within the call
    type          text        NOT NULL,            -- INCOMING ... TRANSFERRED
    at            timestamptz NOT NULL,
    ext           text        NOT NULL DEFAULT '',
    user_login    text        NOT NULL DEFAULT '',
    second_callid text        NOT NULL DEFAULT '',
    channel       text        NOT NULL DEFAULT '',
    PRIMARY KEY (pbx_id, callid, seq)
);
