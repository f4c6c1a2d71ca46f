-- Certificates Gatehouse orders over ACME, one row per domain: where the
-- order stands (pending_validation, pending_issuance, active,
-- pending_validation_timed_out, failed with the CA's reason), when the
-- certificate ends and when to renew it, and retry state.
CREATE TABLE acme_domains (
    tenant TEXT NOT NULL,
    host TEXT NOT NULL,
    certificate TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    not_after_ms BIGINT,
    renew_at_ms BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT,
    lease_until_ms BIGINT,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, host)
);
