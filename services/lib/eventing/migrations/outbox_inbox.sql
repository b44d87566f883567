-- Transactional outbox: a row per event, written in the transaction of the state change it reports.
CREATE TABLE outbox (
    id            UUID PRIMARY KEY,          -- UUIDv7 event id, also the Nats-Msg-Id
    nats_subject  TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    source        TEXT NOT NULL,
    subject       TEXT NOT NULL,             -- the aggregate the event is about
    occurred_at   TIMESTAMPTZ NOT NULL,
    traceparent   TEXT,
    payload       BYTEA NOT NULL,
    published_at  TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rz_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Inbox: the events each consumer applied, recorded in the transaction that applied them.
CREATE TABLE inbox (
    consumer      TEXT NOT NULL,
    event_id      UUID NOT NULL,
    processed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
