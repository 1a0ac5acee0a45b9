-- Several nodes (docs/scaling.md, docs/decisions.md "Nodes"). Every node
-- beats in nodes each second; a node silent for NodeDeadAfter is dead: the
-- node that notices first deletes its row and closes its calls still open
-- with cause node_lost. A call's record is written when the call starts
-- (end_us NULL) and again when it ends, so what was in progress on a node
-- that died, or on this node before a crash, is in the database.
CREATE TABLE nodes (
    id           TEXT PRIMARY KEY,
    sip_addr     TEXT NOT NULL,
    http_addr    TEXT NOT NULL,
    started_us   BIGINT NOT NULL,
    heartbeat_us BIGINT NOT NULL
);
ALTER TABLE calls ADD COLUMN node TEXT NOT NULL DEFAULT '';
CREATE INDEX calls_open ON calls (node, start_us) WHERE end_us IS NULL;
