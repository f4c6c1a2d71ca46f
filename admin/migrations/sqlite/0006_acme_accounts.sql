-- The platform's ACME account per directory URL; its credentials (holding
-- the account's private key) sealed like other private keys.
CREATE TABLE acme_accounts (
    directory_url TEXT PRIMARY KEY,
    credentials_sealed TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
