-- The missed-call ledger (missed.go). A call record now says which
-- extension (or user) its routing decision sent it to, and its direction:
-- inbound (from a trunk), outbound (a user dialling an external number) or
-- internal (a user dialling inside the account).
ALTER TABLE calls ADD COLUMN extension TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN direction TEXT NOT NULL DEFAULT '';

-- One row per missed call (CallRecord.Missed), written in the transaction
-- of the call's final record. resolved_us is set, with resolved_by
-- ("call:ID" of the later answered call between the same two parties, or
-- "owner"), when it is dealt with.
CREATE TABLE missed_calls (
    call_id     TEXT PRIMARY KEY,
    account     TEXT NOT NULL,
    number      TEXT NOT NULL,
    extension   TEXT NOT NULL,
    caller      TEXT NOT NULL,
    caller_name TEXT NOT NULL,
    start_us    BIGINT NOT NULL,
    resolved_us BIGINT,
    resolved_by TEXT NOT NULL DEFAULT ''
);
-- The ledger newest first, and the open entries of one caller (resolution).
CREATE INDEX missed_calls_account_start ON missed_calls (account, start_us, call_id);
CREATE INDEX missed_calls_open_caller ON missed_calls (account, caller) WHERE resolved_us IS NULL;
