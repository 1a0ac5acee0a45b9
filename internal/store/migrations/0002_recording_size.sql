-- The length and size of a call's recording file.
ALTER TABLE calls ADD COLUMN recording_us BIGINT NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN recording_bytes BIGINT NOT NULL DEFAULT 0;
