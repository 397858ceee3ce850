"""Asterisk's Channel Event Log (CEL): the calls the bridge did not see, rebuilt.

Asterisk writes a CEL row for every channel event whether or not anybody listens on AMI
(`cel_pgsql` into a PostgreSQL table, `cel_custom` into a CSV file on the PBX host). After
every gap (start-up, AMI reconnect, a standby taking over) the bridge reads the rows of the
gap and reports the calls it did not see, or saw only in part, like any other, once.

- `rows`: one CEL row, as either backend writes it (`CelRow`);
- `groups`: rows grouped per call (a Linkedid, or several that share channels after a
  pickup or an attended transfer), a call complete once every Linkedid of it ended;
- `synth`: a call's rows as the AMI events Asterisk published for the same moments;
- `interpret`: those events through the call tracker: records and CRM events, pure code;
- `csvlog`, `pglog`: reading the rows of a gap from the CSV file or the table;
- `backfill`: one gap, end to end (what is reported, what settles a call left open).
"""
