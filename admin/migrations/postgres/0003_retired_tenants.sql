-- Names of deleted tenants. Published versions keep a deleted tenant's objects
-- (and their sealed keys are bound to its name): a new tenant must not inherit
-- them by taking the name, so a name is never given out twice.
CREATE TABLE retired_tenants (
    name TEXT PRIMARY KEY,
    retired_ms BIGINT NOT NULL
);
