-- Personal data sealed at rest (AES-256-GCM under a key from outside the database,
-- `personal_data.keys_file`; see rz_platform::sealing), `key_id` naming the key:
-- - client_identities: the BSN moves from `bsn` (plaintext, rows written before) to `sealed`;
-- - provider_messages: `payload` (a 301 carries the client's BSN, name and address) is sealed
--   when `key_id` is set, plaintext when it is NULL (rows written before).
-- The service seals the older rows at start and clears the plaintext.
ALTER TABLE client_identities
    ADD COLUMN sealed BYTEA,
    ADD COLUMN key_id TEXT,
    ALTER COLUMN bsn DROP NOT NULL,
    ADD CONSTRAINT client_identities_sealed_with_key CHECK ((sealed IS NULL) = (key_id IS NULL)),
    ADD CONSTRAINT client_identities_sealed_or_plain CHECK (sealed IS NOT NULL OR bsn IS NOT NULL);

ALTER TABLE provider_messages ADD COLUMN key_id TEXT;
