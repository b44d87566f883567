-- Personal data at rest sealed with AES-256-GCM (rz_platform::sealing) under the key file that
-- already seals the subscription secrets (`webhooks.secret_keys_file`), with the id of the key that
-- sealed each value so keys can rotate:
-- - `deliveries.body`, the CloudEvent POSTed to a provider (it carries the client's BSN, name and
--   address), sealed once per event (associated data `deliveries/<event id>`); a delivered
--   delivery's body is removed (NULL, sealed or not): it is never sent again;
-- - `letters.text`, the letter to a resident (name and address), associated data
--   `letters/<letter id>`.
-- The plaintext columns stay (nullable) for the rows written before this version: the service's
-- start seals those (and reseals values under an older key), clears the plaintext, and clears the
-- body of delivered deliveries. They are not written again.
ALTER TABLE deliveries
    ADD COLUMN body_sealed BYTEA,
    ADD COLUMN body_key_id TEXT,
    ALTER COLUMN body DROP NOT NULL,
    ADD CONSTRAINT deliveries_body_sealed_with_key
        CHECK ((body_sealed IS NULL) = (body_key_id IS NULL)),
    ADD CONSTRAINT deliveries_body_kept
        CHECK (status = 'delivered' OR body IS NOT NULL OR body_sealed IS NOT NULL);

ALTER TABLE letters
    ADD COLUMN text_sealed BYTEA,
    ADD COLUMN text_key_id TEXT,
    ALTER COLUMN text DROP NOT NULL,
    ADD CONSTRAINT letters_text_sealed_with_key
        CHECK ((text_sealed IS NULL) = (text_key_id IS NULL)),
    ADD CONSTRAINT letters_text_kept
        CHECK (text IS NOT NULL OR text_sealed IS NOT NULL);

-- What the start looks for without reading every row: plaintext left (a handful once sealed, so
-- these partial indexes stay small), and values under a key other than the current one (delivered
-- deliveries hold no key id, so only the queue is in that index).
CREATE INDEX deliveries_body_plain ON deliveries (id) WHERE body IS NOT NULL;
CREATE INDEX deliveries_body_key ON deliveries (body_key_id) WHERE body_key_id IS NOT NULL;
CREATE INDEX letters_text_plain ON letters (id) WHERE text IS NOT NULL;
CREATE INDEX letters_text_key ON letters (text_key_id);
