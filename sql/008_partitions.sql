-- Calls, their events and legs in yearly partitions, so years of history stay as quick to
-- page, export and prune as the first: each year has its own indexes, and a year retention
-- has emptied goes with a DROP instead of leaving a bloated table behind. (Monthly
-- partitions cost a filtered page of a million calls a fifth of its throughput, a month's
-- range reading two of them; yearly ones about a twentieth.)
--
-- The partition key `born` is the UTC day in the row's Asterisk id: a Uniqueid or Linkedid
-- is "[systemname-]<epoch seconds>.<counter>", taken when the channel was made. Being a
-- function of the key alone, every path that writes a call (the row opened while it rings,
-- its history, a restart, a CEL backfill) agrees on it without asking the database, and the
-- upserts stay upserts: the primary keys are the old ones plus `born`. An id without that
-- form (another system's) is born on 1970-01-01. Calls and events are keyed by their call
-- (Linkedid), legs by their own channel's Uniqueid.
--
-- A row whose year has no partition yet waits in the table's DEFAULT partition; the bridge
-- makes this year's and the next year's partitions at start and every retention interval
-- (bridge/store/partitions.py), moving such rows into their year as it does.

-- (String functions rather than a regular expression: a row's insert pays for this.)
CREATE FUNCTION call_day(id text) RETURNS date
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE
        WHEN translate(split_part(split_part(id, '.', -2), '-', -1), '0123456789', '') = ''
             AND length(split_part(split_part(id, '.', -2), '-', -1)) BETWEEN 1 AND 11
             AND translate(split_part(id, '.', -1), '0123456789', '') = ''
             AND split_part(id, '.', -1) <> ''
        THEN DATE '1970-01-01' + (split_part(split_part(id, '.', -2), '-', -1)::bigint / 86400)::int
        ELSE DATE '1970-01-01'
    END
$$;

-- The partition of `tbl` (calls, call_events, call_legs) for the year of `day`, made if
-- missing (true then); rows of that year waiting in the default partition move into it.
CREATE FUNCTION call_partition(tbl text, day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    first date := date_trunc('year', day)::date;
    next date := (date_trunc('year', day) + interval '1 year')::date;
    part text := tbl || '_' || to_char(first, 'YYYY');
BEGIN
    IF tbl NOT IN ('calls', 'call_events', 'call_legs') THEN
        RAISE EXCEPTION 'not a call table: %', tbl;
    END IF;
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- bridges making the same year take turns (this lock conflicts with itself only;
    -- taking it also shows this transaction what the previous holder made)
    EXECUTE format('LOCK TABLE %I IN SHARE UPDATE EXCLUSIVE MODE', tbl);
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- queries that read every partition wait while rows move (a year rarely has any
    -- there); should a long one (an export) hold the default partition, give up after 2 s
    -- and leave the year to the next try
    PERFORM set_config('lock_timeout', '2s', true);
    EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', tbl || '_default');
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS)', part, tbl);
    EXECUTE format(
        'WITH moved AS (DELETE FROM %I WHERE born >= $1 AND born < $2 RETURNING *) '
        'INSERT INTO %I SELECT * FROM moved', tbl || '_default', part) USING first, next;
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   tbl, part, first, next);
    RETURN true;
END $$;

-- The partition of `tbl` for the year of `day`, dropped if it holds no row (true then):
-- what retention does with a year it has emptied. Dropping a partition locks its table for
-- a moment; should a long query hold it, this gives up after 5 s (the next prune retries).
CREATE FUNCTION call_partition_drop(tbl text, day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    part text := tbl || '_' || to_char(date_trunc('year', day), 'YYYY');
    present boolean;
BEGIN
    IF tbl NOT IN ('calls', 'call_events', 'call_legs') THEN
        RAISE EXCEPTION 'not a call table: %', tbl;
    END IF;
    IF to_regclass(part) IS NULL THEN
        RETURN false;
    END IF;
    PERFORM set_config('lock_timeout', '5s', true);
    EXECUTE format('LOCK TABLE %I, %I IN ACCESS EXCLUSIVE MODE', tbl, part);
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', part) INTO present;
    IF present THEN
        RETURN false;
    END IF;
    EXECUTE format('DROP TABLE %I', part);
    RETURN true;
END $$;

ALTER TABLE calls RENAME TO calls_unpartitioned;
ALTER TABLE call_events RENAME TO call_events_unpartitioned;
ALTER TABLE call_legs RENAME TO call_legs_unpartitioned;
ALTER TABLE calls_unpartitioned RENAME CONSTRAINT calls_pkey TO calls_unpartitioned_pkey;
ALTER TABLE call_events_unpartitioned RENAME CONSTRAINT call_events_pkey
    TO call_events_unpartitioned_pkey;
ALTER TABLE call_legs_unpartitioned RENAME CONSTRAINT call_legs_pkey
    TO call_legs_unpartitioned_pkey;

CREATE TABLE calls (
    pbx_id       text        NOT NULL,
    callid       text        NOT NULL,             -- Asterisk Linkedid of the call
    born         date        NOT NULL,             -- call_day(callid): the partition key
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
    closed_by    text,                             -- hangup / resync / backfill
    rating       smallint,
    missed_status smallint,                        -- 2: an outbound call back to a missed caller
    facts        jsonb,                            -- an open call's facts (007_continuity)
    PRIMARY KEY (pbx_id, callid, born)
) PARTITION BY RANGE (born);

CREATE TABLE call_events (
    pbx_id        text        NOT NULL,
    callid        text        NOT NULL,
    born          date        NOT NULL,            -- call_day(callid)
    seq           integer     NOT NULL,            -- order within the call
    type          text        NOT NULL,            -- INCOMING ... TRANSFERRED
    at            timestamptz NOT NULL,
    ext           text        NOT NULL DEFAULT '',
    user_login    text        NOT NULL DEFAULT '',
    second_callid text        NOT NULL DEFAULT '',
    channel       text        NOT NULL DEFAULT '',
    PRIMARY KEY (pbx_id, callid, seq, born)
) PARTITION BY RANGE (born);

CREATE TABLE call_legs (
    pbx_id       text        NOT NULL,
    uniqueid     text        NOT NULL,
    born         date        NOT NULL,             -- call_day(uniqueid): the leg's own id
    callid       text        NOT NULL,
    channel      text        NOT NULL,
    kind         text        NOT NULL,             -- trunk / extension / local / other
    ext          text        NOT NULL DEFAULT '',
    started_at   timestamptz NOT NULL,
    answered_at  timestamptz,
    ended_at     timestamptz,
    cause        integer,
    dial_status  text        NOT NULL DEFAULT '',
    PRIMARY KEY (pbx_id, uniqueid, born)
) PARTITION BY RANGE (born);

CREATE TABLE calls_default PARTITION OF calls DEFAULT;
CREATE TABLE call_events_default PARTITION OF call_events DEFAULT;
CREATE TABLE call_legs_default PARTITION OF call_legs DEFAULT;

-- the years already stored, then their rows
DO $$
DECLARE
    y date;
BEGIN
    FOR y IN
        SELECT DISTINCT date_trunc('year', call_day(callid))::date FROM calls_unpartitioned
        UNION SELECT DISTINCT date_trunc('year', call_day(callid))::date
              FROM call_events_unpartitioned
        UNION SELECT DISTINCT date_trunc('year', call_day(uniqueid))::date
              FROM call_legs_unpartitioned
    LOOP
        PERFORM call_partition('calls', y);
        PERFORM call_partition('call_events', y);
        PERFORM call_partition('call_legs', y);
    END LOOP;
END $$;

INSERT INTO calls (pbx_id, callid, born, direction, status, phone, diversion, ext, user_login,
                   group_name, started_at, answered_at, ended_at, duration, wait, recording,
                   closed_by, rating, missed_status, facts)
SELECT pbx_id, callid, call_day(callid), direction, status, phone, diversion, ext, user_login,
       group_name, started_at, answered_at, ended_at, duration, wait, recording, closed_by,
       rating, missed_status, facts
FROM calls_unpartitioned;
INSERT INTO call_events (pbx_id, callid, born, seq, type, at, ext, user_login, second_callid,
                         channel)
SELECT pbx_id, callid, call_day(callid), seq, type, at, ext, user_login, second_callid, channel
FROM call_events_unpartitioned;
INSERT INTO call_legs (pbx_id, uniqueid, born, callid, channel, kind, ext, started_at,
                       answered_at, ended_at, cause, dial_status)
SELECT pbx_id, uniqueid, call_day(uniqueid), callid, channel, kind, ext, started_at,
       answered_at, ended_at, cause, dial_status
FROM call_legs_unpartitioned;

DROP TABLE calls_unpartitioned, call_events_unpartitioned, call_legs_unpartitioned;

-- the indexes of 001 and 003, now on every partition
CREATE INDEX calls_page_idx ON calls (pbx_id, started_at DESC, callid DESC);
CREATE INDEX calls_phone_idx ON calls (pbx_id, phone, started_at DESC);
CREATE INDEX calls_open_idx ON calls (pbx_id) WHERE status IS NULL;
CREATE INDEX calls_user_idx ON calls (pbx_id, user_login, started_at DESC) WHERE user_login <> '';
CREATE INDEX calls_diversion_idx ON calls (pbx_id, diversion, started_at DESC);
CREATE INDEX calls_group_idx ON calls (pbx_id, group_name, started_at DESC) WHERE group_name <> '';
CREATE INDEX call_events_user_idx ON call_events (pbx_id, user_login, at DESC);
CREATE INDEX call_legs_call_idx ON call_legs (pbx_id, callid);
