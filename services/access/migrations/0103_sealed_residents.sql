-- A resident's BSN, names, birth date, address and representative sealed at rest (AES-256-GCM
-- under a key from outside the database, `personal_data.keys_file`; see rz_platform::sealing):
-- `sealed` holds them, `key_id` names the key. The plaintext columns stay (nullable) for rows
-- written before; the service seals those at start and clears their plaintext. The BSN's
-- uniqueness is the client key's (derived from the BSN).
ALTER TABLE residents
    ADD COLUMN sealed BYTEA,
    ADD COLUMN key_id TEXT,
    ADD CONSTRAINT residents_sealed_with_key CHECK ((sealed IS NULL) = (key_id IS NULL)),
    ADD CONSTRAINT residents_sealed_or_plain CHECK (sealed IS NOT NULL OR bsn IS NOT NULL),
    DROP CONSTRAINT residents_bsn_key,
    ALTER COLUMN bsn DROP NOT NULL,
    ALTER COLUMN given_names DROP NOT NULL,
    ALTER COLUMN family_name DROP NOT NULL,
    ALTER COLUMN birth_date DROP NOT NULL,
    ALTER COLUMN street DROP NOT NULL,
    ALTER COLUMN house_number DROP NOT NULL,
    ALTER COLUMN postal_code DROP NOT NULL,
    ALTER COLUMN city DROP NOT NULL;
