-- The draft configuration (one row per tenant object), plugin blobs, published
-- snapshots and the proxy nodes that apply them.

-- Draft objects: pools, domains, routes, certificates and plugins. `spec` is the
-- object's JSON as accepted by the API (private keys sealed, never plaintext).
CREATE TABLE objects (
    tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT,
    revision BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, kind, name)
);
-- A hostname belongs to one tenant at a time.
CREATE UNIQUE INDEX objects_domain_hostname ON objects(name) WHERE kind = 'domain';

-- Plugin components, content-addressed.
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    bytes BLOB NOT NULL,
    size BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);

-- Published configurations. `document` holds every tenant's objects as published
-- (canonical JSON, keys sealed); `hash` is its SHA-256.
CREATE TABLE snapshots (
    version BIGINT PRIMARY KEY,
    hash TEXT NOT NULL,
    document TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    scope TEXT,
    note TEXT,
    rollback_of BIGINT
);

-- Proxies that poll for snapshots, with what they applied last.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    token_prefix TEXT NOT NULL,
    address TEXT NOT NULL,
    applied_version BIGINT,
    applied_hash TEXT,
    last_seen_ms BIGINT NOT NULL,
    last_error TEXT,
    last_error_version BIGINT,
    last_error_ms BIGINT
);
