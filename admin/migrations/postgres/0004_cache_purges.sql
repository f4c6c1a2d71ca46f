-- Cache purges tenants asked for, numbered in the order nodes apply them.
-- Nodes follow the numbers (`GET /v1/dataplane/purges?after=`); old rows are
-- dropped after a day (a node away that long restarts with an empty cache).
CREATE TABLE cache_purges (
    id BIGINT PRIMARY KEY,
    tenant TEXT NOT NULL,
    target TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
