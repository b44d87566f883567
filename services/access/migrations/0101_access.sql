-- Access: this municipality's residents, their cases and the products granted to them.
-- The BSN and the name live here and nowhere else; every other table keys on the pseudonymous
-- client key.

CREATE TABLE residents (
    client_key     TEXT PRIMARY KEY,
    bsn            TEXT NOT NULL UNIQUE,
    given_names    TEXT NOT NULL,
    family_name    TEXT NOT NULL,
    birth_date     DATE NOT NULL,
    street         TEXT NOT NULL,
    house_number   TEXT NOT NULL,
    postal_code    TEXT NOT NULL,
    city           TEXT NOT NULL,
    municipality   TEXT NOT NULL,
    rep_name       TEXT,
    rep_relation   TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE cases (
    id                 UUID PRIMARY KEY,
    client_key         TEXT NOT NULL REFERENCES residents,
    law                TEXT NOT NULL CHECK (law IN ('jeugdwet', 'wmo')),
    status             TEXT NOT NULL CHECK (status IN ('reported', 'investigated', 'applied', 'granted', 'refused')),
    reported_on        DATE,
    investigation_due  DATE,
    investigated_on    DATE,
    applied_on         DATE,
    decision_due       DATE,
    decided_on         DATE,
    refusal_reason     TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cases_client ON cases (client_key);
CREATE INDEX cases_investigation_due ON cases (investigation_due) WHERE status = 'reported';
CREATE INDEX cases_decision_due ON cases (decision_due) WHERE status = 'applied';

-- Granted products (indications), in the order of the decision.
CREATE TABLE products (
    id                      UUID PRIMARY KEY,
    case_id                 UUID NOT NULL REFERENCES cases,
    position                INT NOT NULL,
    client_key              TEXT NOT NULL REFERENCES residents,
    law                     TEXT NOT NULL,
    segment_code            TEXT NOT NULL,
    subsegment_code         TEXT NOT NULL,
    product_category        TEXT NOT NULL,
    product_code            TEXT,
    result                  TEXT NOT NULL,
    goal                    TEXT NOT NULL,
    period_start            DATE NOT NULL,
    period_end              DATE,
    execution_variant       TEXT NOT NULL CHECK (execution_variant IN ('taakgericht', 'outputgericht', 'inspanningsgericht')),
    budget_cents            BIGINT,
    volume                  BIGINT,
    unit                    TEXT,
    frequency               TEXT,
    preferred_provider_agb  TEXT,
    granted_on              DATE NOT NULL,
    version                 INT NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (case_id, position),
    CHECK (period_end IS NULL OR period_end >= period_start)
);
CREATE INDEX products_end ON products (period_end);

-- Every amendment of a product (the decisions on it after the grant).
CREATE TABLE product_amendments (
    product_id  UUID NOT NULL REFERENCES products,
    version     INT NOT NULL,
    amendment   TEXT NOT NULL CHECK (amendment IN ('change', 'extend', 'end')),
    decided_on  DATE NOT NULL,
    period_end  DATE,
    budget_cents BIGINT,
    volume      BIGINT,
    unit        TEXT,
    frequency   TEXT,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, version)
);

-- Client-chosen idempotency keys of create commands.
CREATE TABLE idempotency_keys (
    key          TEXT PRIMARY KEY,
    operation    TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    resource_id  TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
