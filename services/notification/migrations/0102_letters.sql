-- Letters to residents, rendered from templates. They hold names and addresses (from the
-- assignment message), so they are listed per municipality only.
CREATE TABLE letters (
    id                 UUID PRIMARY KEY,
    event_id           UUID NOT NULL,
    kind               TEXT NOT NULL,
    municipality       TEXT NOT NULL,
    client_key         TEXT NOT NULL,
    assignment_number  BIGINT NOT NULL,
    text               TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (event_id, kind)
);
CREATE INDEX letters_municipality ON letters (municipality, created_at);
