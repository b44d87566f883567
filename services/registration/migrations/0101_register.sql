-- The regional contract register.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE providers (
    agb_code       TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    legal_form     TEXT NOT NULL,
    kvk_number     TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('organisation', 'consortium')),
    lead_agb_code  TEXT REFERENCES providers,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Members of a consortium (samenwerkingsverband).
CREATE TABLE consortium_members (
    consortium_agb_code  TEXT NOT NULL REFERENCES providers,
    member_agb_code      TEXT NOT NULL REFERENCES providers,
    PRIMARY KEY (consortium_agb_code, member_agb_code)
);

-- Subcontractors (onderaannemers) under a main contractor.
CREATE TABLE subcontractors (
    main_agb_code  TEXT NOT NULL REFERENCES providers,
    sub_agb_code   TEXT NOT NULL REFERENCES providers,
    PRIMARY KEY (main_agb_code, sub_agb_code)
);

-- A tender is a small aggregate kept as one document.
CREATE TABLE tenders (
    id            UUID PRIMARY KEY,
    segment_code  TEXT NOT NULL,
    doc           JSONB NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE contracts (
    id                  UUID PRIMARY KEY,
    agb_code            TEXT NOT NULL REFERENCES providers,
    segment_code        TEXT NOT NULL,
    subsegments         TEXT[] NOT NULL,
    municipalities      TEXT[] NOT NULL,
    start_date          DATE NOT NULL,
    extensions          INT NOT NULL DEFAULT 0 CHECK (extensions BETWEEN 0 AND 2),
    terminated_on       DATE,
    termination_reason  TEXT NOT NULL DEFAULT '',
    tender_id           UUID REFERENCES tenders,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX contracts_agb ON contracts (agb_code);

-- One row per (contract, subsegment, municipality) with the period the contract runs. The exclusion
-- constraint makes a second overlapping contract of one provider for the same subsegment and
-- municipality impossible, also under concurrent writes.
CREATE TABLE contract_coverage (
    contract_id   UUID NOT NULL REFERENCES contracts ON DELETE CASCADE,
    agb_code      TEXT NOT NULL,
    subsegment    TEXT NOT NULL,
    municipality  TEXT NOT NULL,
    period        DATERANGE NOT NULL,
    PRIMARY KEY (contract_id, subsegment, municipality),
    CONSTRAINT contract_coverage_no_overlap
        EXCLUDE USING gist (agb_code WITH =, subsegment WITH =, municipality WITH =, period WITH &&)
);
CREATE INDEX contract_coverage_lookup ON contract_coverage USING gist (subsegment, municipality, period);

CREATE TABLE contract_budgets (
    contract_id   UUID NOT NULL REFERENCES contracts ON DELETE CASCADE,
    municipality  TEXT NOT NULL,
    year          INT NOT NULL,
    amount_cents  BIGINT NOT NULL CHECK (amount_cents >= 0),
    PRIMARY KEY (contract_id, municipality, year)
);

CREATE TABLE contract_tariffs (
    contract_id   UUID NOT NULL REFERENCES contracts ON DELETE CASCADE,
    product_code  TEXT NOT NULL,
    unit          TEXT NOT NULL,
    price_cents   BIGINT NOT NULL CHECK (price_cents >= 0),
    PRIMARY KEY (contract_id, product_code, unit)
);

-- Client-chosen idempotency keys of create commands.
CREATE TABLE idempotency_keys (
    key          TEXT PRIMARY KEY,
    operation    TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    resource_id  TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
