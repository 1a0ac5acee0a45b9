-- Where a registered device is reached (registrar.Contact.Destination):
-- the REGISTER's Path (RFC 3327) as a JSON list of URIs, and whether it
-- showed the device behind NAT. Bindings from before keep being reached at
-- their source address, as they were.
ALTER TABLE contacts ADD COLUMN path TEXT NOT NULL DEFAULT '[]';
ALTER TABLE contacts ADD COLUMN nat INTEGER NOT NULL DEFAULT 1;
