-- Switchboard schema, version 1. The same SQL runs on SQLite and PostgreSQL:
-- times are BIGINT Unix microseconds (UTC), lists are JSON text.

-- One row per account: its whole configuration document (JSON) and a
-- version that every apply or edit increases by one.
CREATE TABLE account_configs (
    account    TEXT PRIMARY KEY,
    version    BIGINT NOT NULL,
    document   TEXT NOT NULL,
    updated_us BIGINT NOT NULL
);

-- Rotating-distribution counters: value is what the next call gets.
CREATE TABLE rotations (
    account   TEXT NOT NULL,
    extension TEXT NOT NULL,
    value     BIGINT NOT NULL,
    PRIMARY KEY (account, extension)
);

-- Call records (SPEC §4). A call id is unique across accounts.
CREATE TABLE calls (
    id           TEXT PRIMARY KEY,
    account      TEXT NOT NULL,
    number       TEXT NOT NULL,
    caller       TEXT NOT NULL,
    caller_name  TEXT NOT NULL,
    start_us     BIGINT NOT NULL,
    answer_us    BIGINT,
    end_us       BIGINT,
    duration_us  BIGINT NOT NULL,
    outcome      TEXT NOT NULL,
    answered_by  TEXT NOT NULL,
    hangup_cause TEXT NOT NULL,
    tags         TEXT NOT NULL,
    trace        TEXT NOT NULL,
    recording    TEXT NOT NULL,
    voicemail    TEXT NOT NULL
);
CREATE INDEX calls_account_start ON calls (account, start_us, id);

-- The tags of each call again, one row per tag, for the activity filter.
CREATE TABLE call_tags (
    call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    PRIMARY KEY (call_id, tag)
);
CREATE INDEX call_tags_tag ON call_tags (tag, call_id);

-- Registered contacts (location service): user -> device bindings.
CREATE TABLE contacts (
    account     TEXT NOT NULL,
    username    TEXT NOT NULL,
    uri         TEXT NOT NULL,
    source      TEXT NOT NULL,
    transport   TEXT NOT NULL,
    user_agent  TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    expires_us  BIGINT NOT NULL,
    PRIMARY KEY (account, username, uri)
);
CREATE INDEX contacts_expires ON contacts (expires_us);

-- The account's reputation list: caller -> level name (low, medium, high).
CREATE TABLE reputation (
    account    TEXT NOT NULL,
    caller     TEXT NOT NULL,
    level      TEXT NOT NULL,
    updated_us BIGINT NOT NULL,
    PRIMARY KEY (account, caller)
);

-- API tokens, stored as the hex SHA-256 of the token only. account '' is an
-- admin token.
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    account    TEXT NOT NULL,
    created_us BIGINT NOT NULL
);
