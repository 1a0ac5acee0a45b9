-- The guards shared by the nodes (docs/decisions.md "Nodes"): the digest
-- failures of each source, the lockouts they led to (announced on the
-- switchboard_guard channel, held in memory by every node), and each
-- caller's recent calls to each account for the routing flood guard. Rows
-- older than their window are swept by every node once a minute.
CREATE TABLE auth_failures (
    source TEXT NOT NULL,
    at_us  BIGINT NOT NULL
);
CREATE INDEX auth_failures_source ON auth_failures (source, at_us);
CREATE INDEX auth_failures_at ON auth_failures (at_us);
CREATE TABLE lockouts (
    source   TEXT PRIMARY KEY,
    until_us BIGINT NOT NULL
);
CREATE TABLE flood_calls (
    account TEXT NOT NULL,
    caller  TEXT NOT NULL,
    at_us   BIGINT NOT NULL
);
CREATE INDEX flood_calls_caller ON flood_calls (account, caller, at_us);
CREATE INDEX flood_calls_at ON flood_calls (at_us);
