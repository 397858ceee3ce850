-- Provisioning (bridge/provision): what the bridge renders into Asterisk's config files for
-- the employees, ring groups and company numbers API clients write, the runtime state it
-- keeps in Asterisk's AstDB (do not disturb, the black list, recording), and what Asterisk
-- was last seen to have loaded.

-- An employee the bridge provisions gets a SIP endpoint (pjsip or chan_sip) and an
-- extension in the rendered dialplan. The others are Asterisk's own (learnt, or only named).
ALTER TABLE directory_users
    ADD COLUMN provisioned boolean NOT NULL DEFAULT false,
    ADD COLUMN secret text NOT NULL DEFAULT '',              -- SIP password of the phone
    ADD COLUMN ring_time integer NOT NULL DEFAULT 0,         -- seconds; 0: [provision] ring_time
    ADD COLUMN voicemail text NOT NULL DEFAULT '',           -- voicemail.conf context; '' none
    -- Issabel's recording rules, per direction and kind of call
    ADD COLUMN record_in_internal text NOT NULL DEFAULT 'dontcare'
        CHECK (record_in_internal IN ('always', 'dontcare', 'never')),
    ADD COLUMN record_in_external text NOT NULL DEFAULT 'dontcare'
        CHECK (record_in_external IN ('always', 'dontcare', 'never')),
    ADD COLUMN record_out_internal text NOT NULL DEFAULT 'dontcare'
        CHECK (record_out_internal IN ('always', 'dontcare', 'never')),
    ADD COLUMN record_out_external text NOT NULL DEFAULT 'dontcare'
        CHECK (record_out_external IN ('always', 'dontcare', 'never'));

-- A ring group the bridge provisions: its strategy, ring time and members (already here)
-- and where an unanswered call goes.
ALTER TABLE directory_groups
    ADD COLUMN provisioned boolean NOT NULL DEFAULT false,
    ADD COLUMN noanswer text NOT NULL DEFAULT '';  -- '', hangup, busy, user:<login>, ...

-- A company number whose route the bridge renders.
ALTER TABLE company_numbers
    ADD COLUMN provisioned boolean NOT NULL DEFAULT false;

-- Runtime state, mirrored into AstDB (what the dialplan reads): the mirror is what was
-- asked for, so it survives an Asterisk that was away and is written again at every login.
CREATE TABLE provision_dnd (
    pbx_id text NOT NULL,
    login  text NOT NULL,
    PRIMARY KEY (pbx_id, login),
    FOREIGN KEY (pbx_id, login) REFERENCES directory_users (pbx_id, login)
        ON UPDATE CASCADE ON DELETE CASCADE
);

-- Employees whose conversations are never recorded (VPBX users_exception).
CREATE TABLE provision_norecord (
    pbx_id text NOT NULL,
    login  text NOT NULL,
    PRIMARY KEY (pbx_id, login),
    FOREIGN KEY (pbx_id, login) REFERENCES directory_users (pbx_id, login)
        ON UPDATE CASCADE ON DELETE CASCADE
);

-- Blocked callers: E.164 digits, or a range written as its first digits and `*`.
CREATE TABLE provision_blacklist (
    pbx_id     text        NOT NULL,
    telnum     text        NOT NULL,
    comment    text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pbx_id, telnum)
);

CREATE TABLE provision_settings (
    pbx_id          text    PRIMARY KEY,
    block_anonymous boolean NOT NULL DEFAULT false,
    record_external boolean NOT NULL DEFAULT false,  -- record calls with customers
    record_internal boolean NOT NULL DEFAULT false   -- record calls between employees
);

-- The rendered files Asterisk was last seen to have loaded (their digest), and whether a
-- change is waiting for Asterisk (AMI down, or the last apply failed and was rolled back).
CREATE TABLE provision_applied (
    pbx_id        text        PRIMARY KEY,
    digest        text        NOT NULL DEFAULT '',
    applied_at    timestamptz,
    pending_since timestamptz,
    last_reason   text        NOT NULL DEFAULT '',
    last_error    text        NOT NULL DEFAULT ''
);
