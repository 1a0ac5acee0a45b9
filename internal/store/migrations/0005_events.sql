-- Webhooks: a durable outbox of the accounts' events, every delivery
-- attempt, the secrets that sign them and the lease that lets one node at a
-- time deliver (outbox.go).

-- Each account that ever had an event, with the last sequence number given
-- to one of its events. InsertEvents advances it in the inserting
-- transaction, whose row lock orders the commits of one account's events
-- as their numbers; NextDue reads the accounts from here.
CREATE TABLE webhook_queues (
    account  TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL
);

-- One row per event. state is queued, delivered or failed; a queued event
-- is sent at next_attempt_us at the earliest, and only once every queued
-- event of its account with a lower seq is gone. queued_us is when it was
-- queued (or replayed): the retry deadline counts from there, and tries
-- counts the attempts since (the backoff grows with it), where attempts
-- counts them all. done_us is when it was delivered or failed.
CREATE TABLE webhook_events (
    account         TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    id              TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    created_us      BIGINT NOT NULL,
    body            TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    tries           INTEGER NOT NULL,
    queued_us       BIGINT NOT NULL,
    next_attempt_us BIGINT NOT NULL,
    done_us         BIGINT,
    last_error      TEXT NOT NULL,
    PRIMARY KEY (account, seq)
);
-- The head of each account's queue is one probe of this index.
CREATE INDEX webhook_events_queued ON webhook_events (account, seq) WHERE state = 'queued';
-- For pruning finished events.
CREATE INDEX webhook_events_done ON webhook_events (done_us) WHERE state <> 'queued';

-- Every delivery attempt: the HTTP status (0 when there was no response),
-- how long it took and what went wrong.
CREATE TABLE webhook_attempts (
    event_id   TEXT NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    attempt    INTEGER NOT NULL,
    account    TEXT NOT NULL,
    at_us      BIGINT NOT NULL,
    url        TEXT NOT NULL,
    status     INTEGER NOT NULL,
    latency_us BIGINT NOT NULL,
    error      TEXT NOT NULL,
    PRIMARY KEY (event_id, attempt)
);
-- The account's attempts, newest first (Deliveries).
CREATE INDEX webhook_attempts_account ON webhook_attempts (account, at_us, event_id, attempt);

-- The account's signing secret, and the one it replaced, still valid until
-- previous_expires_us ('' and 0 when there is none).
CREATE TABLE webhook_secrets (
    account             TEXT PRIMARY KEY,
    secret              TEXT NOT NULL,
    created_us          BIGINT NOT NULL,
    previous            TEXT NOT NULL,
    previous_expires_us BIGINT NOT NULL
);

-- Named leases: the holder until expires_us. The webhook dispatcher of one
-- node at a time holds 'webhooks', so that nodes sharing a database keep
-- each account's order and do not deliver twice.
CREATE TABLE webhook_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_us BIGINT NOT NULL
);
