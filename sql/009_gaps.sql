-- Where a PBX's calls are not all accounted for yet: the start of the earliest AMI gap whose
-- account from Asterisk's CEL is not stored (NULL: none). Written with the calls, in the
-- same transaction; a bridge that starts reads the CEL from there (queries.sql,
-- seen_until), so a gap's calls are never lost to a bridge killed before its account came.
CREATE TABLE pbx_gaps (
    pbx_id     text PRIMARY KEY,
    since      timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
