-- Continuity across restarts and outages: each open call keeps what the tracker knows of
-- it beyond its events (its real start and answer, whom it was offered to first, who talked
-- last, the outcome so far: bridge.tracker.model.CallFacts), so a restarted bridge goes on
-- with the call instead of counting it from the takeover.
ALTER TABLE calls ADD COLUMN facts jsonb;
