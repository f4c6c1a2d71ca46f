-- Plugin components nothing refers to any more (no plugin in any draft, no
-- stored version) are collected after a grace period counted from when a
-- collection pass first found them unreferenced.
ALTER TABLE blobs ADD COLUMN unreferenced_since_ms BIGINT;
