-- What nodes report beyond ACK/NACK: the tenant names and host patterns
-- their own config files define (JSON; the admin keeps them from tenants),
-- and the tenant parts the applied version runs without (JSON, with why).
ALTER TABLE nodes ADD COLUMN reserved TEXT;
ALTER TABLE nodes ADD COLUMN refused TEXT;
