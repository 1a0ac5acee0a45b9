-- What the REST API needs: configuration history, named and read-only
-- tokens, voicemail per user and indexes for the activity filters.
--
-- COLLATE "C" is byte order (PostgreSQL's name); on SQLite the store runs
-- it as COLLATE BINARY, the same order and SQLite's default.

-- Every version of every account's configuration, as written, with who
-- wrote it. account_configs keeps holding the latest one.
CREATE TABLE config_versions (
    account    TEXT NOT NULL,
    version    BIGINT NOT NULL,
    document   TEXT NOT NULL,
    author     TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    PRIMARY KEY (account, version)
);
-- Older versions were not kept: the history starts with the current one.
INSERT INTO config_versions (account, version, document, author, created_us)
SELECT account, version, document, 'cli', updated_us FROM account_configs;

-- A token's public id is the first 12 hex digits of its hash: unique, so
-- that revoking by id removes one token.
ALTER TABLE api_tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX api_tokens_id ON api_tokens (substr(token_hash, 1, 12));

-- The user a call's voicemail is for, and whether it was listened to
-- (0 or 1; set by the API, never cleared by the call's own writes).
ALTER TABLE calls ADD COLUMN voicemail_user TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN voicemail_heard INTEGER NOT NULL DEFAULT 0;

-- Activity filters, each in the order of the log (newest first) so that a
-- page reads only its own rows. The caller index is in byte order for the
-- caller-prefix range.
--
-- call_tags gets the call's account and start, so that the calls with a
-- tag are read from one index in log order however rare the tag; the
-- (tag, call_id) index served nothing else.
ALTER TABLE call_tags ADD COLUMN account TEXT NOT NULL DEFAULT '';
ALTER TABLE call_tags ADD COLUMN start_us BIGINT NOT NULL DEFAULT 0;
UPDATE call_tags SET
    account = (SELECT c.account FROM calls c WHERE c.id = call_tags.call_id),
    start_us = (SELECT c.start_us FROM calls c WHERE c.id = call_tags.call_id);
DROP INDEX call_tags_tag;
CREATE INDEX call_tags_account_tag ON call_tags (account, tag, start_us, call_id);
CREATE INDEX calls_account_number ON calls (account, number, start_us, id);
CREATE INDEX calls_account_caller ON calls (account, caller COLLATE "C", start_us, id);
CREATE INDEX calls_account_outcome ON calls (account, outcome, start_us, id);
CREATE INDEX calls_account_answered_by ON calls (account, answered_by, start_us, id);
CREATE INDEX calls_account_voicemail_user ON calls (account, voicemail_user, start_us, id) WHERE voicemail <> '';
