-- SMS (internal/sms, messages.go). One row per message, whatever its
-- direction: inbound (from a trunk or the API, to one of the account's
-- numbers), outbound (a user to an external number, through a trunk) or
-- internal (a user to another user). number is the account's number the
-- message was sent to or from; sender is the user who sent it (outbound,
-- internal). dedup is the SIP Call-ID and CSeq of a MESSAGE, so that a
-- retransmission is stored once (NULL for the API's messages: NULLs are
-- distinct in a unique index on both databases).
CREATE TABLE messages (
    id           TEXT PRIMARY KEY,
    account      TEXT NOT NULL,
    direction    TEXT NOT NULL,
    number       TEXT NOT NULL,
    from_addr    TEXT NOT NULL,
    to_addr      TEXT NOT NULL,
    sender       TEXT NOT NULL DEFAULT '',
    content_type TEXT NOT NULL,
    body         TEXT NOT NULL,
    state        TEXT NOT NULL,
    dedup        TEXT,
    created_us   BIGINT NOT NULL,
    updated_us   BIGINT NOT NULL
);
CREATE UNIQUE INDEX messages_dedup ON messages (account, dedup);
CREATE INDEX messages_account_created ON messages (account, created_us, id);

-- One row per message and device (user_name, device: the Contact URI; ''
-- until the user has a registered device), or per message and trunk for
-- an outbound message (trunk). next_us is when the next attempt is due;
-- a node that takes a due delivery moves it (and claimed_us) ahead by a
-- lease first, so a node that dies mid-attempt leaves it due again soon
-- after, and a registration does not make a delivery in flight due twice.
CREATE TABLE message_deliveries (
    id         TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    account    TEXT NOT NULL,
    user_name  TEXT NOT NULL,
    device     TEXT NOT NULL,
    trunk      TEXT NOT NULL DEFAULT '',
    state      TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_us    BIGINT NOT NULL,
    claimed_us BIGINT NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL
);
CREATE INDEX message_deliveries_message ON message_deliveries (message_id);
CREATE INDEX message_deliveries_due ON message_deliveries (next_us) WHERE state = 'queued';
CREATE INDEX message_deliveries_user ON message_deliveries (account, user_name) WHERE state = 'queued';

-- Every attempt of a delivery: the SIP status (0: none) and the error.
CREATE TABLE message_attempts (
    delivery_id TEXT NOT NULL,
    n           INTEGER NOT NULL,
    at_us       BIGINT NOT NULL,
    status      INTEGER NOT NULL,
    error       TEXT NOT NULL,
    PRIMARY KEY (delivery_id, n)
);
