-- Webhook subscriptions of providers' systems. The secret signs every POST (HMAC-SHA256); it must be
-- kept in a form that can sign, so it is stored as is and only ever returned by CreateSubscription.
CREATE TABLE subscriptions (
    id              UUID PRIMARY KEY,
    agb_code        TEXT NOT NULL,
    url             TEXT NOT NULL,
    event_types     TEXT[] NOT NULL,
    municipalities  TEXT[] NOT NULL,
    segments        TEXT[] NOT NULL,
    secret          TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_agb ON subscriptions (agb_code);

-- One row per (event, subscription), written in the transaction that records the event in the inbox.
-- `body` is the CloudEvent as it is POSTed, rendered once, so every attempt sends the same bytes.
CREATE TABLE deliveries (
    id                UUID PRIMARY KEY,
    subscription_id   UUID NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    agb_code          TEXT NOT NULL,
    event_id          UUID NOT NULL,
    event_type        TEXT NOT NULL,
    event_subject     TEXT NOT NULL,
    body              TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          INT NOT NULL DEFAULT 0,
    first_attempt_at  TIMESTAMPTZ,
    next_attempt_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The worker that holds the delivery (set by a claim, checked when the result is written).
    claim             UUID,
    last_error        TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at      TIMESTAMPTZ,
    failed_at         TIMESTAMPTZ,
    UNIQUE (event_id, subscription_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_failed ON deliveries (agb_code, failed_at) WHERE status = 'failed';

-- Operator alerts: a delivery that failed for good. Resolved by a replay.
CREATE TABLE alerts (
    id           UUID PRIMARY KEY,
    kind         TEXT NOT NULL,
    delivery_id  UUID REFERENCES deliveries (id) ON DELETE CASCADE,
    agb_code     TEXT NOT NULL,
    message      TEXT NOT NULL,
    raised_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at  TIMESTAMPTZ
);
CREATE INDEX alerts_open ON alerts (raised_at) WHERE resolved_at IS NULL;

CREATE TABLE idempotency_keys (
    key          TEXT PRIMARY KEY,
    operation    TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    resource_id  TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
