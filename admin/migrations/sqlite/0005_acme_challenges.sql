-- HTTP-01 challenges every edge node must answer at
-- /.well-known/acme-challenge/<token> for `host`. Nodes follow the set
-- (`GET /v1/dataplane/challenges`); `version` below is bumped by every change,
-- and each node's last applied version is kept with the node, so an order is
-- declared ready only once every live node serves its token.
CREATE TABLE acme_challenges (
    token TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    key_authorization TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE TABLE acme_challenge_version (
    id INTEGER PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO acme_challenge_version (id, version) VALUES (1, 0);
ALTER TABLE nodes ADD COLUMN challenges_version BIGINT NOT NULL DEFAULT 0;
