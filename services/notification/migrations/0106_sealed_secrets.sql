-- Subscription secrets sealed at rest: AES-256-GCM under a key kept outside the database
-- (`webhooks.secret_keys_file`), with the id of the key that sealed each one so keys can rotate.
-- The plaintext column is kept only for the rows written before this version: the service's start
-- seals them (and reseals any secret under an older key) and sets `secret` to NULL; it is never
-- written again.
ALTER TABLE subscriptions
    ADD COLUMN secret_sealed BYTEA,
    ADD COLUMN secret_key_id TEXT,
    ALTER COLUMN secret DROP NOT NULL,
    ADD CONSTRAINT subscriptions_secret_kept
        CHECK (secret IS NOT NULL OR (secret_sealed IS NOT NULL AND secret_key_id IS NOT NULL));
