-- The bridge's named queries, in one place (loaded by bridge/store/queries.py).
-- Each query starts with a `-- name --` line; the comment lines after it say what it is for.
-- $1 is always the PBX id where a query is per PBX.

-- ============================================================ calls (written by the pipeline)

-- open_call --
-- Calls seen for the first time (or their first answer): the row exists while it is up.
-- One statement for the batch (one row per call), a column per array: a partitioned table
-- routes rows once per statement. facts: the call's after the batch's last event of it.
INSERT INTO calls (pbx_id, callid, born, direction, phone, diversion, group_name, started_at,
                   answered_at, facts)
SELECT $1, r.callid, call_day(r.callid), r.direction, r.phone, r.diversion, r.grp,
       r.started_at, r.answered_at, r.facts::jsonb
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
            $8::timestamptz[], $9::text[])
     AS r(callid, direction, phone, diversion, grp, started_at, answered_at, facts)
ON CONFLICT (pbx_id, callid, born) DO UPDATE SET
    phone = CASE WHEN calls.phone = '' THEN EXCLUDED.phone ELSE calls.phone END,
    group_name = CASE WHEN calls.group_name = '' THEN EXCLUDED.group_name
                      ELSE calls.group_name END,
    answered_at = COALESCE(calls.answered_at, EXCLUDED.answered_at),
    facts = COALESCE(EXCLUDED.facts, calls.facts)
WHERE calls.status IS NULL;

-- call_event --
-- CRM events of calls; a call's sequence number makes a replay a no-op.
INSERT INTO call_events (pbx_id, callid, born, seq, type, at, ext, user_login, second_callid,
                         channel)
SELECT $1, r.callid, call_day(r.callid), r.seq, r.type, r.at, r.ext, r.user_login,
       r.second_callid, r.channel
FROM unnest($2::text[], $3::integer[], $4::text[], $5::timestamptz[], $6::text[], $7::text[],
            $8::text[], $9::text[])
     AS r(callid, seq, type, at, ext, user_login, second_callid, channel)
ON CONFLICT (pbx_id, callid, seq, born) DO NOTHING;

-- finish_call --
-- Finished calls (one row per call): their histories, as the tracker built them.
INSERT INTO calls (pbx_id, callid, born, direction, status, phone, diversion, ext, user_login,
                   group_name, started_at, answered_at, ended_at, duration, wait, recording,
                   closed_by, phone_name)
SELECT $1, r.callid, call_day(r.callid), r.direction, r.status, r.phone, r.diversion, r.ext,
       r.user_login, r.grp, r.started_at, r.answered_at, r.ended_at, r.duration, r.wait,
       r.recording, r.closed_by, r.phone_name
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::text[], $9::text[], $10::timestamptz[], $11::timestamptz[],
            $12::timestamptz[], $13::integer[], $14::integer[], $15::text[], $16::text[],
            $17::text[])
     AS r(callid, direction, status, phone, diversion, ext, user_login, grp, started_at,
          answered_at, ended_at, duration, wait, recording, closed_by, phone_name)
ON CONFLICT (pbx_id, callid, born) DO UPDATE SET
    direction = EXCLUDED.direction, status = EXCLUDED.status, phone = EXCLUDED.phone,
    diversion = EXCLUDED.diversion, ext = EXCLUDED.ext, user_login = EXCLUDED.user_login,
    group_name = EXCLUDED.group_name, started_at = EXCLUDED.started_at,
    answered_at = EXCLUDED.answered_at, ended_at = EXCLUDED.ended_at,
    duration = EXCLUDED.duration, wait = EXCLUDED.wait, recording = EXCLUDED.recording,
    closed_by = EXCLUDED.closed_by, phone_name = EXCLUDED.phone_name, facts = NULL
-- a history rebuilt from Asterisk's CEL never replaces one already reported
WHERE EXCLUDED.closed_by <> 'backfill' OR calls.status IS NULL;

-- call_leg --
-- Channels that took part in finished calls (one row per channel).
INSERT INTO call_legs (pbx_id, uniqueid, born, callid, channel, kind, ext, started_at,
                       answered_at, ended_at, cause, dial_status)
SELECT $1, r.uniqueid, call_day(r.uniqueid), r.callid, r.channel, r.kind, r.ext, r.started_at,
       r.answered_at, r.ended_at, r.cause, r.dial_status
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
            $8::timestamptz[], $9::timestamptz[], $10::integer[], $11::text[])
     AS r(uniqueid, callid, channel, kind, ext, started_at, answered_at, ended_at, cause,
          dial_status)
ON CONFLICT (pbx_id, uniqueid, born) DO UPDATE SET
    callid = EXCLUDED.callid, channel = EXCLUDED.channel, kind = EXCLUDED.kind,
    ext = EXCLUDED.ext, started_at = EXCLUDED.started_at, answered_at = EXCLUDED.answered_at,
    ended_at = EXCLUDED.ended_at, cause = EXCLUDED.cause, dial_status = EXCLUDED.dial_status;

-- calls_back --
-- Of these outbound calls ($2 callids, $3 customers, $4 starts), those that call back a
-- customer whose inbound call was missed within $5 seconds and not answered since.
SELECT r.callid
FROM unnest($2::text[], $3::text[], $4::timestamptz[]) AS r(callid, phone, start)
WHERE EXISTS (
    SELECT 1 FROM calls m
    WHERE m.pbx_id = $1 AND m.phone = r.phone AND m.direction = 'in' AND m.status = 'missed'
      AND m.started_at < r.start AND m.started_at >= r.start - make_interval(secs => $5)
      AND NOT EXISTS (
          SELECT 1 FROM calls s
          WHERE s.pbx_id = $1 AND s.phone = r.phone AND s.status = 'Success'
            AND s.direction <> 'internal' AND s.started_at > m.started_at
            AND s.started_at < r.start));

-- mark_callbacks --
-- Their history says missedStatus = 2.
UPDATE calls SET missed_status = 2 WHERE pbx_id = $1 AND callid = ANY($2);

-- open_calls --
-- Calls a previous run left open, with each employee's last event (for a restart).
SELECT c.callid, c.direction, c.phone, c.diversion, c.group_name, c.started_at,
       c.answered_at,
       COALESCE((SELECT max(seq) FROM call_events e
                 WHERE e.pbx_id = c.pbx_id AND e.callid = c.callid), 0) AS last_seq,
       COALESCE((SELECT jsonb_object_agg(ext, type) FROM (
                    SELECT DISTINCT ON (ext) ext, type FROM call_events e
                    WHERE e.pbx_id = c.pbx_id AND e.callid = c.callid
                    ORDER BY ext, seq DESC) last), '{}'::jsonb)::text AS sessions,
       c.facts::text AS facts
FROM calls c WHERE c.pbx_id = $1 AND c.status IS NULL;

-- finished_among --
-- Which of these calls ($2) are finished (their history reported): a backfill skips them.
SELECT callid FROM calls WHERE pbx_id = $1 AND callid = ANY($2::text[]) AND status IS NOT NULL;

-- seen_until --
-- How far a previous run followed this PBX (Asterisk's clock, epoch seconds): the newest
-- start or end of a recent call, or event of a call left open; NULL when it never stored
-- a call. With $2 (the CEL is read), never past the start of a gap whose account from the
-- CEL it did not store.
SELECT extract(epoch FROM least(
    greatest(
        (SELECT max(greatest(started_at, ended_at)) FROM calls
         WHERE pbx_id = $1
           AND started_at >= (SELECT max(started_at) FROM calls WHERE pbx_id = $1)
                             - interval '1 day'),
        (SELECT max(e.at) FROM calls c
         JOIN call_events e ON e.pbx_id = c.pbx_id AND e.callid = c.callid
         WHERE c.pbx_id = $1 AND c.status IS NULL)),
    (SELECT since FROM pbx_gaps WHERE pbx_id = $1 AND $2::boolean)))::float8;

-- gaps_pending --
-- The start of the earliest gap still waiting for its account ($2; NULL: none).
INSERT INTO pbx_gaps (pbx_id, since) VALUES ($1, $2)
ON CONFLICT (pbx_id) DO UPDATE SET since = EXCLUDED.since, updated_at = now();

-- known_extensions --
-- Every employee extension seen in a call of this PBX.
SELECT DISTINCT ext FROM call_legs WHERE pbx_id = $1 AND kind = 'extension' AND ext <> '';

-- call_exists --
-- Whether the bridge has this call.
SELECT EXISTS (SELECT 1 FROM calls WHERE pbx_id = $1 AND callid = $2 AND born = call_day($2));

-- call_recording --
-- The recording file of a call ('' when none).
SELECT recording FROM calls WHERE pbx_id = $1 AND callid = $2 AND born = call_day($2);

-- rate_call --
-- A post-call rating, stored on its call; what the `rating` command needs of the call.
UPDATE calls SET rating = $3 WHERE pbx_id = $1 AND callid = $2 AND born = call_day($2)
RETURNING phone, user_login, ext, direction;

-- call_counts --
-- Calls by direction and status (the demo's summary).
SELECT direction, coalesce(status, 'up') AS status, count(*) AS n
FROM calls WHERE pbx_id = $1 GROUP BY 1, 2 ORDER BY 1, 2;

-- ============================================================ webhook targets

-- enabled_targets --
SELECT * FROM webhook_targets WHERE pbx_id = $1 AND enabled ORDER BY id;

-- ensure_primary --
-- The config's [crm] as the target 'primary', kept in step with the config; one switched
-- off by a 410 stays off until an operator enables it.
INSERT INTO webhook_targets (pbx_id, name, url, token, profile, signing_secret)
VALUES ($1, 'primary', $2, $3, $4, $5)
ON CONFLICT (pbx_id, name) DO UPDATE SET url = EXCLUDED.url, token = EXCLUDED.token,
    profile = EXCLUDED.profile, signing_secret = EXCLUDED.signing_secret,
    enabled = CASE WHEN webhook_targets.disabled_reason = 'no [crm] url in the config'
                   THEN true ELSE webhook_targets.enabled END
RETURNING id;

-- disable_primary --
UPDATE webhook_targets SET enabled = false, disabled_reason = 'no [crm] url in the config'
WHERE pbx_id = $1 AND name = 'primary';

-- list_targets --
SELECT id, name, url, profile, commands, direction, enabled, disabled_reason,
       signing_secret IS NOT NULL AS signed
FROM webhook_targets WHERE pbx_id = $1 ORDER BY id;

-- add_target --
-- A subscription (another CRM, a billing hook); replaces one of the same name.
INSERT INTO webhook_targets (pbx_id, name, url, token, profile, commands, direction,
                             signing_secret)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (pbx_id, name) DO UPDATE SET url = EXCLUDED.url, token = EXCLUDED.token,
    profile = EXCLUDED.profile, commands = EXCLUDED.commands,
    direction = EXCLUDED.direction, signing_secret = EXCLUDED.signing_secret,
    enabled = true, disabled_reason = ''
RETURNING id;

-- remove_target --
-- A subscription and its undelivered rows; never the primary.
DELETE FROM webhook_targets WHERE pbx_id = $1 AND name = $2 AND name <> 'primary';

-- enable_target --
UPDATE webhook_targets SET enabled = true, disabled_reason = '' WHERE pbx_id = $1 AND name = $2;

-- disable_target --
-- A 410 from the receiver switches its target off.
UPDATE webhook_targets SET enabled = false, disabled_reason = $2 WHERE id = $1;

-- ============================================================ the outbox

-- enqueue --
-- One webhook row; the same (target, call, key) twice is one row.
INSERT INTO webhook_outbox (pbx_id, target_id, callid, cmd, dedupe_key, webhook_id, payload,
                            expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb,
        CASE WHEN $8::float8 IS NULL THEN NULL
             ELSE now() + make_interval(secs => $8::float8) END)
ON CONFLICT (target_id, callid, dedupe_key) DO NOTHING;

-- claim --
-- Up to $1 due rows for worker $2, leased for $3 seconds; only the oldest undelivered row
-- of each (target, call), so a call's webhooks reach a CRM in order.
WITH due AS (
    SELECT o.id
    FROM webhook_outbox o
    JOIN webhook_targets t ON t.id = o.target_id AND t.enabled
    WHERE ((o.state = 'pending' AND o.available_at <= now())
           OR (o.state = 'leased' AND o.lease_until < now()))
      AND NOT EXISTS (
          SELECT 1 FROM webhook_outbox e
          WHERE e.target_id = o.target_id AND e.callid = o.callid AND e.id < o.id
            AND e.state IN ('pending', 'leased'))
    ORDER BY o.id
    LIMIT $1
    FOR UPDATE OF o SKIP LOCKED
)
UPDATE webhook_outbox o
SET state = 'leased', leased_by = $2, lease_until = now() + make_interval(secs => $3),
    attempts = o.attempts + 1, first_attempt_at = COALESCE(o.first_attempt_at, now())
FROM due, webhook_targets t
WHERE o.id = due.id AND t.id = o.target_id
RETURNING o.id, o.target_id, o.callid, o.cmd, o.webhook_id, o.payload::text AS payload,
          o.attempts, extract(epoch FROM o.created_at)::float8 AS created_at,
          extract(epoch FROM o.expires_at)::float8 AS expires_at,
          extract(epoch FROM o.first_attempt_at)::float8 AS first_attempt_at,
          t.url, t.token, t.profile, t.signing_secret, t.name AS target;

-- finish_row --
-- A final outcome ($3: sent, dead, expired) and its attempt, in one round trip; only
-- while worker $2 still holds the lease.
WITH attempt AS (
    INSERT INTO webhook_attempts (outbox_id, worker, status, latency_ms, error, outcome)
    VALUES ($1, $2, $4, $6, $7, $3)
)
UPDATE webhook_outbox SET state = $3, last_status = $4, last_error = $5, lease_until = NULL,
       sent_at = CASE WHEN $3 = 'sent' THEN now() END
WHERE id = $1 AND state = 'leased' AND leased_by = $2;

-- record_attempt --
INSERT INTO webhook_attempts (outbox_id, worker, status, latency_ms, error, outcome)
VALUES ($1, $2, $3, $4, $5, $6);

-- retry_row --
-- Back to pending, due in $5 seconds.
UPDATE webhook_outbox SET state = 'pending', lease_until = NULL, last_status = $3,
       last_error = $4, available_at = now() + make_interval(secs => $5)
WHERE id = $1 AND state = 'leased' AND leased_by = $2
RETURNING available_at;

-- hold_call --
-- The rest of that call waits with its retried row (nothing to scan meanwhile).
UPDATE webhook_outbox SET available_at = $3
WHERE target_id = $1 AND callid = $2 AND state = 'pending' AND available_at < $3;

-- return_row --
-- A row of a target just switched off waits, untried, for the target to come back.
UPDATE webhook_outbox SET state = 'pending', lease_until = NULL, attempts = attempts - 1,
       last_status = $3
WHERE id = $1 AND state = 'leased' AND leased_by = $2;

-- next_due --
-- Seconds until the next row can be claimed (a retry, an expired lease); NULL when none.
SELECT extract(epoch FROM least(
    (SELECT min(o.available_at) FROM webhook_outbox o
     JOIN webhook_targets t ON t.id = o.target_id AND t.enabled
     WHERE o.state = 'pending'
       AND NOT EXISTS (
           SELECT 1 FROM webhook_outbox e
           WHERE e.target_id = o.target_id AND e.callid = o.callid AND e.id < o.id
             AND e.state IN ('pending', 'leased'))),
    (SELECT min(lease_until) FROM webhook_outbox WHERE state = 'leased')) - now())::float8;

-- list_rows --
-- Newest rows first, optionally of one state.
SELECT o.id, t.name AS target, o.callid, o.cmd, o.state, o.attempts, o.last_status,
       o.last_error, o.created_at, o.available_at, o.webhook_id
FROM webhook_outbox o JOIN webhook_targets t ON t.id = o.target_id
WHERE o.pbx_id = $1 AND ($2::text IS NULL OR o.state = $2)
ORDER BY o.id DESC LIMIT $3;

-- row_counts --
SELECT state, count(*) AS n FROM webhook_outbox WHERE pbx_id = $1 GROUP BY state;

-- redrive --
-- Dead letters (all, or ids $2) back to pending with a fresh retry window; their
-- webhook-id stays, so a receiver that got one anyway drops it.
UPDATE webhook_outbox SET state = 'pending', available_at = now(), attempts = 0,
       expires_at = now() + (expires_at - created_at),
       created_at = now(), first_attempt_at = NULL, lease_until = NULL
WHERE pbx_id = $1 AND state = 'dead' AND ($2::bigint[] IS NULL OR id = ANY($2));

-- wake_workers --
SELECT pg_notify('webhook_outbox', '');

-- backlog --
-- Per target: rows waiting, the age of the oldest waiting row and of the oldest waiting
-- history, dead letters (for /metrics and /readyz).
SELECT t.name AS target,
       count(*) FILTER (WHERE o.state IN ('pending', 'leased')) AS waiting,
       coalesce(extract(epoch FROM now() - min(o.created_at)
                FILTER (WHERE o.state IN ('pending', 'leased'))), 0)::float8 AS oldest_age,
       coalesce(extract(epoch FROM now() - min(o.created_at)
                FILTER (WHERE o.state IN ('pending', 'leased') AND o.cmd = 'history')),
                0)::float8 AS oldest_history_age,
       count(*) FILTER (WHERE o.state = 'dead') AS dead
FROM webhook_targets t
LEFT JOIN webhook_outbox o ON o.target_id = t.id AND o.state IN ('pending', 'leased', 'dead')
WHERE t.pbx_id = $1
GROUP BY t.name ORDER BY t.name;

-- ============================================================ retention

-- prune_sent --
-- Delivered and expired rows older than $2 seconds (their attempts go with them), at most
-- $3 at a time.
DELETE FROM webhook_outbox WHERE id IN (
    SELECT id FROM webhook_outbox
    WHERE pbx_id = $1 AND state IN ('sent', 'expired')
      AND coalesce(sent_at, created_at) < now() - make_interval(secs => $2)
    LIMIT $3);

-- prune_attempts --
-- Attempts older than $1 seconds of rows still kept (dead letters, long retries).
DELETE FROM webhook_attempts WHERE id IN (
    SELECT id FROM webhook_attempts WHERE at < now() - make_interval(secs => $1) LIMIT $2);

-- prune_calls --
-- Finished calls older than $2 seconds, with their events and legs, at most $3 at a time.
WITH gone AS (
    DELETE FROM calls WHERE (pbx_id, callid, born) IN (
        SELECT pbx_id, callid, born FROM calls
        WHERE pbx_id = $1 AND status IS NOT NULL
          AND ended_at < now() - make_interval(secs => $2)
        LIMIT $3)
    RETURNING pbx_id, callid, born
), events AS (
    DELETE FROM call_events e USING gone g
    WHERE e.pbx_id = g.pbx_id AND e.callid = g.callid AND e.born = g.born
), legs AS (
    DELETE FROM call_legs l USING gone g WHERE l.pbx_id = g.pbx_id AND l.callid = g.callid
)
SELECT count(*) FROM gone;

-- ============================================================ partitions of the call tables

-- partition_years_due --
-- The years whose partitions should exist: this one, the $1 next, and every year of a row
-- waiting in a default partition (sql/008_partitions.sql).
SELECT DISTINCT year FROM (
    SELECT generate_series(date_trunc('year', now() AT TIME ZONE 'UTC'),
                           date_trunc('year', now() AT TIME ZONE 'UTC')
                               + make_interval(years => $1),
                           interval '1 year')::date AS year
    UNION ALL SELECT date_trunc('year', born)::date FROM calls_default
    UNION ALL SELECT date_trunc('year', born)::date FROM call_events_default
    UNION ALL SELECT date_trunc('year', born)::date FROM call_legs_default
) due ORDER BY year;

-- make_partition --
-- The partition of call table $1 for the year of $2, made if missing (true then).
SELECT call_partition($1, $2);

-- partition_years --
-- The years of call table $1 that have a partition (their 1 January), oldest first.
SELECT to_date(right(c.relname, 4), 'YYYY') AS year
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = $1::regclass AND c.relname ~ '_\d{4}$'
ORDER BY year;

-- drop_partition --
-- The partition of call table $1 for the year of $2, dropped if it holds no row (true then).
SELECT call_partition_drop($1, $2);

-- ============================================================ leader lock

-- try_lock --
SELECT pg_try_advisory_lock($1);

-- ping --
SELECT 1;

-- own_stale_lock --
-- End this bridge's own earlier lock session ($2, its backend pid) if it still holds the
-- PBX's lock ($1): the bridge lost sight of it (a network cut that PostgreSQL has not
-- noticed yet), not the lock. True once it has ended (waited for up to 2 s, so its lock is
-- free when this returns). An advisory lock on a bigint key is
-- (classid, objid) = its high and low 32 bits, objsubid 1.
SELECT pg_terminate_backend(pid, 2000) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND pid = $2
  AND classid = (($1::bigint >> 32) & 4294967295)::oid
  AND objid = ($1::bigint & 4294967295)::oid;

-- ============================================================ migrations

-- migrations_lock --
SELECT pg_advisory_lock($1);

-- migrations_unlock --
SELECT pg_advisory_unlock($1);

-- migrations_table --
CREATE TABLE IF NOT EXISTS schema_migrations (
    name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());

-- migrations_applied --
SELECT name FROM schema_migrations;

-- migration_done --
INSERT INTO schema_migrations (name) VALUES ($1);

-- ============================================================ API keys

-- create_api_key --
INSERT INTO api_keys (pbx_id, name, prefix, secret_hash, networks, dialects)
VALUES ($1, $2, $3, $4, $5::cidr[], $6);

-- list_api_keys --
SELECT id, name, prefix, networks, dialects, created_at, last_used_at, revoked_at
FROM api_keys WHERE pbx_id = $1 ORDER BY id;

-- revoke_api_key --
UPDATE api_keys SET revoked_at = now() WHERE pbx_id = $1 AND name = $2 AND revoked_at IS NULL;

-- find_api_key --
-- A live key by its public prefix.
SELECT id, pbx_id, name, prefix, secret_hash, networks, dialects
FROM api_keys WHERE pbx_id = $1 AND prefix = $2 AND revoked_at IS NULL;

-- touch_api_keys --
UPDATE api_keys SET last_used_at = now() WHERE id = ANY($1);

-- ============================================================ one call, for the APIs

-- call_by_id --
SELECT callid, direction, status, phone, diversion, ext, user_login, group_name, started_at,
       answered_at, ended_at, duration, wait, recording, rating, missed_status, closed_by,
       phone_name
FROM calls WHERE pbx_id = $1 AND callid = $2 AND born = call_day($2);

-- call_legs_of --
SELECT uniqueid, channel, kind, ext, started_at, answered_at, ended_at, cause, dial_status
FROM call_legs WHERE pbx_id = $1 AND callid = $2 ORDER BY started_at, uniqueid;

-- call_events_of --
SELECT seq, type, at, ext, user_login, second_callid
FROM call_events WHERE pbx_id = $1 AND callid = $2 AND born = call_day($2) ORDER BY seq;

-- callid_of_channel --
-- The call a channel took part in: its own call, or the call whose leg it was.
SELECT callid FROM calls WHERE pbx_id = $1 AND callid = $2 AND born = call_day($2)
UNION ALL
SELECT callid FROM call_legs WHERE pbx_id = $1 AND uniqueid = $2 AND born = call_day($2)
LIMIT 1;

-- ============================================================ the directory

-- directory_users --
SELECT login, name, ext, telnum, mobile, email, position, source, provisioned, secret,
       ring_time, voicemail, record_in_internal, record_in_external, record_out_internal,
       record_out_external
FROM directory_users WHERE pbx_id = $1 ORDER BY ext = '', ext, login;

-- directory_user --
-- By login or extension.
SELECT login, name, ext, telnum, mobile, email, position, source, provisioned, secret,
       ring_time, voicemail, record_in_internal, record_in_external, record_out_internal,
       record_out_external
FROM directory_users WHERE pbx_id = $1 AND (login = $2 OR ext = $2)
ORDER BY login = $2 DESC LIMIT 1;

-- upsert_user --
-- What Asterisk or the config says of an employee; what an API client wrote wins.
INSERT INTO directory_users (pbx_id, login, name, ext, telnum, mobile, email, position, source)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (pbx_id, login) DO UPDATE SET
    name = CASE WHEN directory_users.source = 'api' AND EXCLUDED.source <> 'api'
                THEN directory_users.name ELSE coalesce(nullif(EXCLUDED.name, ''),
                                                        directory_users.name) END,
    ext = CASE WHEN directory_users.source = 'api' AND EXCLUDED.source <> 'api'
               THEN directory_users.ext ELSE EXCLUDED.ext END,
    telnum = coalesce(nullif(EXCLUDED.telnum, ''), directory_users.telnum),
    mobile = coalesce(nullif(EXCLUDED.mobile, ''), directory_users.mobile),
    email = coalesce(nullif(EXCLUDED.email, ''), directory_users.email),
    position = coalesce(nullif(EXCLUDED.position, ''), directory_users.position),
    source = CASE WHEN directory_users.source = 'api' THEN 'api' ELSE EXCLUDED.source END,
    updated_at = now();

-- directory_groups --
SELECT id, kind, name, ext, strategy, ring_time, members, source, provisioned, noanswer
FROM directory_groups WHERE pbx_id = $1 ORDER BY id;

-- directory_group --
SELECT id, kind, name, ext, strategy, ring_time, members, source, provisioned, noanswer
FROM directory_groups WHERE pbx_id = $1 AND id = $2;

-- upsert_group --
INSERT INTO directory_groups (pbx_id, kind, name, ext, strategy, ring_time, members, source)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (pbx_id, kind, ext) DO UPDATE SET
    name = CASE WHEN directory_groups.source = 'api' AND EXCLUDED.source <> 'api'
                THEN directory_groups.name ELSE EXCLUDED.name END,
    strategy = EXCLUDED.strategy, members = EXCLUDED.members,
    source = CASE WHEN directory_groups.source = 'api' THEN 'api' ELSE EXCLUDED.source END,
    updated_at = now()
RETURNING id;

-- company_numbers --
SELECT telnum, name, route_type, route_to, ivr::text AS ivr, source, provisioned, disabled
FROM company_numbers WHERE pbx_id = $1 ORDER BY telnum;

-- company_number --
SELECT telnum, name, route_type, route_to, ivr::text AS ivr, source, provisioned, disabled
FROM company_numbers WHERE pbx_id = $1 AND telnum = $2;

-- upsert_number --
INSERT INTO company_numbers (pbx_id, telnum, name, route_type, route_to, ivr, source)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)
ON CONFLICT (pbx_id, telnum) DO UPDATE SET
    name = CASE WHEN company_numbers.source = 'api' AND EXCLUDED.source <> 'api'
                THEN company_numbers.name ELSE EXCLUDED.name END,
    route_type = CASE WHEN company_numbers.source = 'api' AND EXCLUDED.source <> 'api'
                      THEN company_numbers.route_type ELSE EXCLUDED.route_type END,
    route_to = CASE WHEN company_numbers.source = 'api' AND EXCLUDED.source <> 'api'
                    THEN company_numbers.route_to ELSE EXCLUDED.route_to END,
    source = CASE WHEN company_numbers.source = 'api' THEN 'api' ELSE EXCLUDED.source END,
    updated_at = now();

-- ============================================================ the directory, learnt
-- What Asterisk and the config say (source pbx or config), written by the directory sync
-- of the leading bridge in one transaction; rows an API client wrote (source api) are
-- never changed or removed by it.

-- lock_directory --
-- One directory sync at a time per PBX (until the transaction ends).
SELECT pg_advisory_xact_lock(hashtextextended('asterisk-crm-bridge directory:' || $1, 0));

-- directory_user_keys --
-- Who holds which login and extension (and the name shown), before a sync decides what to
-- write.
SELECT login, ext, name, source FROM directory_users WHERE pbx_id = $1;

-- forget_users --
-- Learnt employees ($2 logins) that are gone, or whose extension another login now has.
DELETE FROM directory_users
WHERE pbx_id = $1 AND source <> 'api' AND login = ANY($2::text[]);

-- release_extensions --
-- Learnt employees ($2 logins) about to take another extension give theirs up first
-- (two employees swapping extensions must not collide on the way).
UPDATE directory_users SET ext = '', updated_at = now()
WHERE pbx_id = $1 AND source <> 'api' AND login = ANY($2::text[]);

-- learn_user --
-- An employee as Asterisk or the config shows them ($5: pbx or config). A name Asterisk
-- no longer shows is kept; the row is only touched when something changed.
INSERT INTO directory_users (pbx_id, login, name, ext, source)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (pbx_id, login) DO UPDATE SET
    name = coalesce(nullif(EXCLUDED.name, ''), directory_users.name),
    ext = EXCLUDED.ext,
    source = EXCLUDED.source,
    updated_at = now()
WHERE directory_users.source <> 'api'
  AND (directory_users.name, directory_users.ext, directory_users.source)
      IS DISTINCT FROM (coalesce(nullif(EXCLUDED.name, ''), directory_users.name),
                        EXCLUDED.ext, EXCLUDED.source);

-- learn_group --
-- A queue (from Asterisk) or ring group (from the config); `members` are logins.
INSERT INTO directory_groups (pbx_id, kind, name, ext, strategy, members, source)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (pbx_id, kind, ext) DO UPDATE SET
    name = EXCLUDED.name,
    strategy = EXCLUDED.strategy,
    members = EXCLUDED.members,
    source = EXCLUDED.source,
    updated_at = now()
WHERE directory_groups.source <> 'api'
  AND (directory_groups.name, directory_groups.strategy, directory_groups.members,
       directory_groups.source)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.strategy, EXCLUDED.members, EXCLUDED.source);

-- forget_groups --
-- Learnt groups of the sources $2 that were not learnt again ($3: 'kind:ext' keys).
DELETE FROM directory_groups
WHERE pbx_id = $1 AND source = ANY($2::text[]) AND NOT (kind || ':' || ext = ANY($3::text[]));

-- learn_number --
-- A company number from the config, with its name and route.
INSERT INTO company_numbers (pbx_id, telnum, name, route_type, route_to, source)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (pbx_id, telnum) DO UPDATE SET
    name = EXCLUDED.name,
    route_type = EXCLUDED.route_type,
    route_to = EXCLUDED.route_to,
    source = EXCLUDED.source,
    updated_at = now()
WHERE company_numbers.source <> 'api'
  AND (company_numbers.name, company_numbers.route_type, company_numbers.route_to,
       company_numbers.source)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.route_type, EXCLUDED.route_to, EXCLUDED.source);

-- forget_numbers --
-- Learnt company numbers of the sources $2 that were not learnt again ($3).
DELETE FROM company_numbers
WHERE pbx_id = $1 AND source = ANY($2::text[]) AND NOT (telnum = ANY($3::text[]));

-- yield_extension --
-- An API client gives extension $2 to login $3: a learnt row of another login lets go of
-- it (the next sync forgets that row).
UPDATE directory_users SET ext = '', updated_at = now()
WHERE pbx_id = $1 AND ext = $2 AND login <> $3 AND source <> 'api';

-- ============================================================ internal calls (VPBX inner history)

-- inner_calls --
-- Internal calls of PBX $1 started in [$2, $3), newest first, at most $6 (NULL: all): the
-- caller (the call's employee) and the callee (the first extension leg other than the
-- caller's, an answered one first), each named by the directory (by login, else by
-- extension; the extension itself when the directory does not know it); only calls where
-- a party is one of $4 (logins or extensions; NULL: any), only answered ($5 true) or
-- unanswered ($5 false) ones.
SELECT c.callid, c.started_at, c.ended_at, c.recording,
       coalesce(fl.login, fe.login, nullif(c.user_login, ''), c.ext) AS from_login,
       coalesce(fl.name, fe.name, '') AS from_name,
       coalesce(te.login, callee.ext, '') AS to_login, coalesce(te.name, '') AS to_name,
       callee.answered_at AS to_answered_at, callee.ended_at AS to_ended_at
FROM calls c
LEFT JOIN LATERAL (
    SELECT l.ext, l.answered_at, l.ended_at
    FROM call_legs l
    WHERE l.pbx_id = c.pbx_id AND l.callid = c.callid AND l.kind = 'extension'
      AND l.ext <> '' AND l.ext <> c.ext
    ORDER BY l.answered_at IS NULL, l.started_at, l.uniqueid
    LIMIT 1
) callee ON true
LEFT JOIN directory_users fl ON fl.pbx_id = c.pbx_id AND fl.login = c.user_login
LEFT JOIN directory_users fe ON fe.pbx_id = c.pbx_id AND fe.ext = c.ext AND c.ext <> ''
    AND fl.login IS NULL
LEFT JOIN directory_users te ON te.pbx_id = c.pbx_id AND te.ext = callee.ext
WHERE c.pbx_id = $1 AND c.direction = 'internal' AND c.status IS NOT NULL
  AND c.started_at >= $2 AND c.started_at < $3
  AND ($4::text[] IS NULL OR c.ext = ANY($4) OR c.user_login = ANY($4)
       OR callee.ext = ANY($4))
  AND ($5::boolean IS NULL OR (callee.answered_at IS NOT NULL) = $5)
ORDER BY c.started_at DESC, c.callid DESC
LIMIT $6;

-- ============================================================ logins (password dialects)

-- create_login --
INSERT INTO logins (pbx_id, name, display_name, password_hash, dialects)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, pbx_id, name, display_name, dialects, created_at, updated_at;

-- list_logins --
SELECT l.id, l.name, l.display_name, l.dialects, l.created_at, l.last_login_at,
       (SELECT count(*) FROM login_tokens t WHERE t.login_id = l.id
          AND (t.expires_at IS NULL OR t.expires_at > now())) AS live_tokens
FROM logins l WHERE l.pbx_id = $1 ORDER BY l.name;

-- remove_login --
-- A login and (by cascade) its tokens.
DELETE FROM logins WHERE pbx_id = $1 AND name = $2;

-- find_login --
-- A login by name, with its password hash (to verify a password).
SELECT id, pbx_id, name, display_name, dialects, created_at, updated_at, password_hash
FROM logins WHERE pbx_id = $1 AND name = $2;

-- rehash_login --
-- A password hash made with newer argon2 parameters replaces the old one at login.
UPDATE logins SET password_hash = $2 WHERE id = $1;

-- create_login_token --
-- A token for login $1 and dialect $2 ($4: seconds it lives, NULL for ever); the login's
-- last login is now.
WITH login AS (UPDATE logins SET last_login_at = now() WHERE id = $1)
INSERT INTO login_tokens (login_id, dialect, secret_hash, expires_at)
VALUES ($1, $2, $3, CASE WHEN $4::float8 IS NULL THEN NULL
                         ELSE now() + make_interval(secs => $4::float8) END)
RETURNING id;

-- use_login_token --
-- The login of live token $2 (its secret's hash $4) for dialect $3 of PBX $1; marks the
-- token used.
WITH used AS (
    UPDATE login_tokens t SET last_used_at = now()
    FROM logins l
    WHERE t.id = $2 AND t.secret_hash = $4 AND t.dialect = $3
      AND t.login_id = l.id AND l.pbx_id = $1
      AND (t.expires_at IS NULL OR t.expires_at > now())
    RETURNING t.login_id
)
SELECT l.id, l.pbx_id, l.name, l.display_name, l.dialects, l.created_at, l.updated_at
FROM used JOIN logins l ON l.id = used.login_id;

-- delete_login_token --
DELETE FROM login_tokens WHERE id = $1;

-- ============================================================ billing dialect

-- billing_legs_of --
-- The legs of these calls ($2 callids): what a CDR's hangup cause and, for internal calls,
-- its answer come from.
SELECT callid, uniqueid, channel, kind, ext, started_at, answered_at, ended_at, cause,
       dial_status
FROM call_legs WHERE pbx_id = $1 AND callid = ANY($2)
ORDER BY callid, started_at, uniqueid;

-- ============================================================ Sangoma dialect

-- sangoma_user_by_ext --
SELECT userman_id, login, name, ext, telnum, mobile, email, position
FROM directory_users WHERE pbx_id = $1 AND ext = $2;

-- sangoma_user_by_id --
SELECT userman_id, login, name, ext, telnum, mobile, email, position
FROM directory_users WHERE pbx_id = $1 AND userman_id = $2;

-- sangoma_webhooks --
-- The Sangoma subscriptions of a PBX, all of them or of one direction ($2: in/out/both).
SELECT id, url, direction FROM webhook_targets
WHERE pbx_id = $1 AND profile = 'sangoma' AND ($2::text IS NULL OR direction = $2)
ORDER BY id;

-- sangoma_webhook --
SELECT id, url, direction FROM webhook_targets
WHERE pbx_id = $1 AND profile = 'sangoma' AND id = $2;

-- sangoma_webhook_update --
UPDATE webhook_targets SET url = $3, direction = $4, enabled = true, disabled_reason = ''
WHERE pbx_id = $1 AND profile = 'sangoma' AND id = $2
RETURNING id, url, direction;

-- sangoma_webhook_delete --
-- A subscription and its undelivered rows.
DELETE FROM webhook_targets WHERE pbx_id = $1 AND profile = 'sangoma' AND id = $2
RETURNING id, url, direction;

-- sangoma_webhook_commands --
-- What every Sangoma subscription receives follows the config (call start, end or both).
UPDATE webhook_targets SET commands = $2
WHERE pbx_id = $1 AND profile = 'sangoma' AND commands <> $2;

-- ============================================================ the native API (/api/v1)

-- native_user_names --
-- The directory's names of these logins ($2), for a page of calls.
SELECT login, name FROM directory_users WHERE pbx_id = $1 AND login = ANY($2);

-- native_logins --
-- The employees named by login or extension in $2 (the cloud-PBX user calls).
SELECT login, ext FROM directory_users
WHERE pbx_id = $1 AND (login = ANY($2) OR (ext <> '' AND ext = ANY($2)));

-- native_targets --
-- Webhook targets as the API shows them (all, or the one named $2): never the token or
-- the signing secret, only whether there is one.
SELECT id, name, url, profile, commands, direction, enabled, disabled_reason,
       token <> '' AS has_token, signing_secret IS NOT NULL AS signed, created_at
FROM webhook_targets WHERE pbx_id = $1 AND ($2::text IS NULL OR name = $2) ORDER BY id;

-- ============================================================ provisioning
-- What bridge/provision renders into Asterisk and keeps in its AstDB (sql/005_provision.sql).

-- provision_user --
-- An API client's word on an employee's phone ($3 provisioned: the bridge renders it).
UPDATE directory_users SET
    provisioned = $3, secret = $4, ring_time = $5, voicemail = $6,
    record_in_internal = $7, record_in_external = $8,
    record_out_internal = $9, record_out_external = $10, updated_at = now()
WHERE pbx_id = $1 AND login = $2;

-- restore_user --
-- An employee as they were before a write Asterisk refused, whoever owned them (an undo).
UPDATE directory_users SET
    name = $3, ext = $4, telnum = $5, mobile = $6, email = $7, position = $8, source = $9,
    provisioned = $10, secret = $11, ring_time = $12, voicemail = $13,
    record_in_internal = $14, record_in_external = $15,
    record_out_internal = $16, record_out_external = $17, updated_at = now()
WHERE pbx_id = $1 AND login = $2;

-- restore_number --
-- A company number as it was before a write Asterisk refused, whoever owned it (an undo).
UPDATE company_numbers SET
    name = $3, route_type = $4, route_to = $5, ivr = $6::jsonb, source = $7,
    provisioned = $8, disabled = $9, updated_at = now()
WHERE pbx_id = $1 AND telnum = $2;

-- provision_group --
-- An API client's word on a ring group: rendered or not, its ring time, where an unanswered
-- call goes.
UPDATE directory_groups SET provisioned = $3, ring_time = $4, noanswer = $5, updated_at = now()
WHERE pbx_id = $1 AND id = $2;

-- provision_number --
UPDATE company_numbers SET provisioned = $3, updated_at = now()
WHERE pbx_id = $1 AND telnum = $2;

-- delete_user --
DELETE FROM directory_users WHERE pbx_id = $1 AND login = $2 RETURNING login;

-- delete_group --
DELETE FROM directory_groups WHERE pbx_id = $1 AND id = $2 RETURNING id;

-- delete_number --
DELETE FROM company_numbers WHERE pbx_id = $1 AND telnum = $2 RETURNING telnum;

-- provision_lock --
-- One apply at a time per PBX, across processes (session lock: released by provision_unlock,
-- or with the connection).
SELECT pg_advisory_lock($1);

-- provision_unlock --
SELECT pg_advisory_unlock($1);

-- provision_xact_lock --
-- One AstDB write at a time per PBX (until the transaction ends).
SELECT pg_advisory_xact_lock($1);

-- provision_applied --
SELECT digest, applied_at, pending_since, last_reason, last_error
FROM provision_applied WHERE pbx_id = $1;

-- provision_mark_applied --
-- Asterisk showed the files of digest $2.
INSERT INTO provision_applied (pbx_id, digest, applied_at, last_reason)
VALUES ($1, $2, now(), $3)
ON CONFLICT (pbx_id) DO UPDATE SET
    digest = EXCLUDED.digest, applied_at = now(), pending_since = NULL,
    last_reason = EXCLUDED.last_reason, last_error = '';

-- provision_mark_pending --
-- A change waits for Asterisk ($3: why it was not applied).
INSERT INTO provision_applied (pbx_id, pending_since, last_reason, last_error)
VALUES ($1, now(), $2, $3)
ON CONFLICT (pbx_id) DO UPDATE SET
    pending_since = coalesce(provision_applied.pending_since, now()),
    last_reason = EXCLUDED.last_reason, last_error = EXCLUDED.last_error;

-- dnd_logins --
SELECT login FROM provision_dnd WHERE pbx_id = $1 ORDER BY login;

-- dnd_on --
INSERT INTO provision_dnd (pbx_id, login) VALUES ($1, $2) ON CONFLICT DO NOTHING;

-- dnd_off --
DELETE FROM provision_dnd WHERE pbx_id = $1 AND login = $2;

-- norecord_logins --
SELECT login FROM provision_norecord WHERE pbx_id = $1 ORDER BY login;

-- norecord_on --
INSERT INTO provision_norecord (pbx_id, login) VALUES ($1, $2) ON CONFLICT DO NOTHING;

-- norecord_off --
DELETE FROM provision_norecord WHERE pbx_id = $1 AND login = $2;

-- blacklist --
SELECT telnum, comment FROM provision_blacklist WHERE pbx_id = $1 ORDER BY telnum;

-- blacklist_add --
INSERT INTO provision_blacklist (pbx_id, telnum, comment) VALUES ($1, $2, $3)
ON CONFLICT (pbx_id, telnum) DO UPDATE SET comment = EXCLUDED.comment;

-- blacklist_remove --
DELETE FROM provision_blacklist WHERE pbx_id = $1 AND telnum = $2 RETURNING telnum;

-- astdb_wanted --
-- Whether anything of this PBX is meant to be in AstDB.
SELECT EXISTS (SELECT 1 FROM provision_dnd WHERE pbx_id = $1)
    OR EXISTS (SELECT 1 FROM provision_norecord WHERE pbx_id = $1)
    OR EXISTS (SELECT 1 FROM provision_blacklist WHERE pbx_id = $1)
    OR EXISTS (SELECT 1 FROM provision_settings
               WHERE pbx_id = $1 AND (block_anonymous OR record_external OR record_internal));

-- provision_settings --
SELECT block_anonymous, record_external, record_internal
FROM provision_settings WHERE pbx_id = $1;

-- save_provision_settings --
INSERT INTO provision_settings (pbx_id, block_anonymous, record_external, record_internal)
VALUES ($1, $2, $3, $4)
ON CONFLICT (pbx_id) DO UPDATE SET
    block_anonymous = EXCLUDED.block_anonymous,
    record_external = EXCLUDED.record_external,
    record_internal = EXCLUDED.record_internal;

-- ============================================================ API writes (Issabel pbxapi, VPBX)
-- sql/006_writes.sql

-- token_secret --
-- The secret of PBX $1 for purpose $2, made from $3 by whoever asks first (two bridges
-- asking at once get the same one).
WITH made AS (
    INSERT INTO token_secrets (pbx_id, purpose, secret) VALUES ($1, $2, $3)
    ON CONFLICT (pbx_id, purpose) DO NOTHING
    RETURNING secret
)
SELECT secret FROM made
UNION ALL
SELECT secret FROM token_secrets WHERE pbx_id = $1 AND purpose = $2
LIMIT 1;

-- number_disabled --
-- A company number takes calls ($3 false) or refuses them ($3 true).
UPDATE company_numbers SET disabled = $3, updated_at = now()
WHERE pbx_id = $1 AND telnum = $2 RETURNING telnum;

-- api_user_contacts --
-- What an API client says of an employee's contact fields, empty values included (the
-- general upsert keeps a stored value where it is given an empty one).
UPDATE directory_users SET telnum = $3, mobile = $4, email = $5, position = $6,
    updated_at = now()
WHERE pbx_id = $1 AND login = $2;

-- group_by_ext --
-- A ring group or queue by its extension (or queue name).
SELECT id, kind, name, ext, strategy, ring_time, members, source, provisioned, noanswer
FROM directory_groups WHERE pbx_id = $1 AND kind = $2 AND ext = $3;

-- rekey_group --
-- A group an API client gives another extension keeps its id (and what refers to it).
UPDATE directory_groups SET ext = $3, updated_at = now()
WHERE pbx_id = $1 AND id = $2 RETURNING id;

-- used_extensions --
-- Every extension of PBX $1 an employee's phone or a group holds.
SELECT ext FROM directory_users WHERE pbx_id = $1 AND ext <> ''
UNION
SELECT ext FROM directory_groups WHERE pbx_id = $1 AND ext <> '';

-- restore_group --
-- A group as it was before a write Asterisk then refused (an undo): back under its own id
-- if the write deleted it; its row exactly as it was if the write changed it, whoever owned
-- it (the upsert keeps what an API client wrote, so it cannot give a learnt group back).
INSERT INTO directory_groups (id, pbx_id, kind, name, ext, strategy, ring_time, members, source,
                              provisioned, noanswer)
VALUES ($2, $1, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (id) DO UPDATE SET
    kind = EXCLUDED.kind, name = EXCLUDED.name, ext = EXCLUDED.ext,
    strategy = EXCLUDED.strategy, ring_time = EXCLUDED.ring_time, members = EXCLUDED.members,
    source = EXCLUDED.source, provisioned = EXCLUDED.provisioned, noanswer = EXCLUDED.noanswer,
    updated_at = now();
