-- Tenants, API tokens and the append-only audit log.
-- Times are Unix milliseconds (BIGINT) so the same queries run on SQLite and PostgreSQL.

CREATE TABLE tenants (
    name TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    revision BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    prefix TEXT NOT NULL UNIQUE,
    secret_sha256 TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    tenant TEXT REFERENCES tenants(name) ON DELETE CASCADE,
    created_ms BIGINT NOT NULL,
    created_by TEXT,
    expires_ms BIGINT,
    revoked_ms BIGINT,
    last_used_ms BIGINT
);
CREATE INDEX tokens_tenant ON tokens(tenant);

CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    request_id TEXT NOT NULL,
    action TEXT NOT NULL,
    tenant TEXT,
    target TEXT NOT NULL,
    before_json TEXT,
    after_json TEXT,
    outcome TEXT NOT NULL
);
CREATE INDEX audit_tenant_at ON audit_events(tenant, at_ms);
CREATE INDEX audit_at ON audit_events(at_ms);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
