-- Declarations (JW323 / WMO323) received as XML and their approved lines. A declaration is
-- recorded by its DeclaratieNummer per provider and law (TR333: 9333 when used before); each
-- approved line by its ProductReferentie/ReferentieNummer per provider and law (TR314: 8021 when
-- delivered before). A credit line (COD043 'C') undoes the debit line its VorigReferentieNummer
-- names: the debit gets `credited_by` (TR323 8017 without such a debit, TR390 9390 when credited
-- before). Amounts are euro cents. Holds no personal data: the client is known through the
-- assignment (municipality, number), never by BSN.
CREATE TABLE declarations (
    agb_code        TEXT NOT NULL CHECK (agb_code ~ '^[0-9]{8}$'),
    law             TEXT NOT NULL CHECK (law IN ('JW', 'WMO')),
    number          TEXT NOT NULL CHECK (number ~ '^[A-Za-z0-9]{1,12}$'),
    municipality    TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    period_start    DATE NOT NULL,
    period_end      DATE NOT NULL,
    received_on     DATE NOT NULL,
    lines           INTEGER NOT NULL CHECK (lines >= 0),
    refused_lines   INTEGER NOT NULL CHECK (refused_lines >= 0),
    declared_cents  BIGINT NOT NULL,
    approved_cents  BIGINT NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (agb_code, law, number)
);

CREATE TABLE declaration_lines (
    agb_code           TEXT NOT NULL,
    law                TEXT NOT NULL CHECK (law IN ('JW', 'WMO')),
    reference          TEXT NOT NULL CHECK (length(reference) BETWEEN 1 AND 20),
    declaration_number TEXT NOT NULL,
    municipality       TEXT NOT NULL,
    assignment_number  BIGINT NOT NULL,
    product_category   TEXT NOT NULL,
    product_code       TEXT NOT NULL,
    period_start       DATE NOT NULL,
    period_end         DATE NOT NULL CHECK (period_end >= period_start),
    volume             BIGINT NOT NULL CHECK (volume >= 0),
    unit               TEXT NOT NULL,
    tariff_cents       BIGINT,
    amount_cents       BIGINT NOT NULL CHECK (amount_cents >= 0),
    debit_credit       TEXT NOT NULL CHECK (debit_credit IN ('D', 'C')),
    previous_reference TEXT,
    credited_by        TEXT,
    PRIMARY KEY (agb_code, law, reference),
    FOREIGN KEY (agb_code, law, declaration_number) REFERENCES declarations (agb_code, law, number)
);

CREATE INDEX declaration_lines_assignment ON declaration_lines (municipality, assignment_number);
