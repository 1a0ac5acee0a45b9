-- The address a registration came from as the SIP front classified it (behind
-- a trusted proxy, the address the proxy names; otherwise the packet's
-- source): only a source with a registration may call as a user
-- (docs/security.md, "Calls and messages from users"). Bindings from before
-- take the host of their packet source.
ALTER TABLE contacts ADD COLUMN client TEXT NOT NULL DEFAULT '';
UPDATE contacts SET client = CASE
    WHEN source LIKE '[%' THEN substr(source, 2, strpos(source, ']') - 2)
    WHEN strpos(source, ':') > 0 THEN substr(source, 1, strpos(source, ':') - 1)
    ELSE source END;
CREATE INDEX contacts_client ON contacts (client, expires_us);
