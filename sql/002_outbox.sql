-- Durable CRM webhooks: targets (the primary [crm] plus subscriptions), the transactional
-- outbox (rows written in the same transaction as the calls they describe) and every
-- delivery attempt.

CREATE TABLE webhook_targets (
    id              bigserial   PRIMARY KEY,
    pbx_id          text        NOT NULL,
    name            text        NOT NULL,                 -- 'primary' is the config's [crm]
    url             text        NOT NULL,
    token           text        NOT NULL DEFAULT '',
    profile         text        NOT NULL DEFAULT 'vpbx',  -- vpbx / vpbx-legacy / json
    commands        text[]      NOT NULL DEFAULT '{history,event,rating}',
    direction       text        NOT NULL DEFAULT 'both',  -- in / out / both
    signing_secret  text,
    enabled         boolean     NOT NULL DEFAULT true,
    disabled_reason text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (pbx_id, name)
);

CREATE TABLE webhook_outbox (
    id           bigserial   PRIMARY KEY,
    pbx_id       text        NOT NULL,
    target_id    bigint      NOT NULL REFERENCES webhook_targets (id) ON DELETE CASCADE,
    callid       text        NOT NULL,
    cmd          text        NOT NULL,                -- history / event / rating
    dedupe_key   text        NOT NULL,                -- makes enqueueing idempotent
    webhook_id   text        NOT NULL,                -- stable across retries
    payload      jsonb       NOT NULL,                -- wire fields, without the token
    state        text        NOT NULL DEFAULT 'pending',  -- pending/leased/sent/dead/expired
    created_at   timestamptz NOT NULL DEFAULT now(),
    available_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,                         -- events: a late pop-up is noise
    lease_until  timestamptz,
    leased_by    text,
    attempts     integer     NOT NULL DEFAULT 0,
    first_attempt_at timestamptz,                     -- durable rows get a day from here
    last_status  integer,
    last_error   text        NOT NULL DEFAULT '',
    sent_at      timestamptz,
    UNIQUE (target_id, callid, dedupe_key)
);
-- what is due, and "is an earlier row of this call and target still undelivered?"
CREATE INDEX webhook_outbox_due ON webhook_outbox (available_at, id)
    WHERE state IN ('pending', 'leased');
CREATE INDEX webhook_outbox_call ON webhook_outbox (target_id, callid, id)
    WHERE state IN ('pending', 'leased');
CREATE INDEX webhook_outbox_dead ON webhook_outbox (pbx_id, id) WHERE state = 'dead';

CREATE TABLE webhook_attempts (
    id         bigserial   PRIMARY KEY,
    outbox_id  bigint      NOT NULL REFERENCES webhook_outbox (id) ON DELETE CASCADE,
    at         timestamptz NOT NULL DEFAULT now(),
    worker     text        NOT NULL DEFAULT '',
    status     integer,
    latency_ms integer,
    error      text        NOT NULL DEFAULT '',
    outcome    text        NOT NULL
);
CREATE INDEX webhook_attempts_row ON webhook_attempts (outbox_id);

-- wake the delivery workers as soon as rows are committed
CREATE FUNCTION webhook_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('webhook_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER webhook_outbox_notify AFTER INSERT ON webhook_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_outbox_notify();
