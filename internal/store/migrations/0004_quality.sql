-- The media quality of a call: one entry per party of its answered legs
-- (the caller, each member who answered), as a JSON list of objects with
-- leg, packets_sent, packets_received, lost, loss_ratio, jitter_ms, rtt_ms
-- (null when unknown) and mos; and the lowest MOS among them, NULL when no
-- leg's was estimated (a call nobody answered), for the mos_below filter.
ALTER TABLE calls ADD COLUMN quality TEXT NOT NULL DEFAULT '[]';
ALTER TABLE calls ADD COLUMN mos DOUBLE PRECISION;

-- Calls below a MOS are found in this index when they are few (the poor
-- calls among many good ones); see listCalls.
CREATE INDEX calls_account_mos ON calls (account, mos, start_us, id) WHERE mos IS NOT NULL;
