-- The read model: facts taken from the events of access, assignment and registration. Only the
-- pseudonymous client key is kept, never a BSN or a name. Each row remembers the time of the event
-- that last set it, so an older event replayed after a newer one does not undo it.

-- Access: cases (one per request / application) and what their decision granted.
CREATE TABLE cases (
    case_id           TEXT PRIMARY KEY,
    municipality      TEXT NOT NULL,
    client_key        TEXT NOT NULL,
    law               TEXT NOT NULL,            -- jeugdwet | wmo | ''
    status            TEXT NOT NULL,
    reported_on       DATE,                     -- Wmo melding
    investigation_due DATE,
    investigated_on   DATE,
    applied_on        DATE,
    decision_due      DATE,
    decided_on        DATE,
    event_time        TIMESTAMPTZ NOT NULL
);

CREATE TABLE granted_products (
    product_id        TEXT PRIMARY KEY,
    case_id           TEXT NOT NULL,
    municipality      TEXT NOT NULL,
    client_key        TEXT NOT NULL,
    law               TEXT NOT NULL,
    segment_code      TEXT NOT NULL,
    subsegment_code   TEXT NOT NULL,
    period_start      DATE,
    period_end        DATE,
    variant           TEXT NOT NULL,
    budget_cents      BIGINT NOT NULL,
    volume            BIGINT NOT NULL,
    unit              TEXT NOT NULL,
    frequency         TEXT NOT NULL,
    status            TEXT NOT NULL,
    version           BIGINT NOT NULL
);

-- Assignment: the lifecycle of every assignment, keyed as the standard keys it.
CREATE TABLE assignments (
    municipality       TEXT NOT NULL,
    number             BIGINT NOT NULL,
    client_key         TEXT NOT NULL,
    agb_code           TEXT NOT NULL,
    law                TEXT NOT NULL,
    segment_code       TEXT NOT NULL,
    subsegment_code    TEXT NOT NULL,
    period_start       DATE NOT NULL,
    period_end         DATE,
    variant            TEXT NOT NULL,
    volume             BIGINT NOT NULL,
    unit               TEXT NOT NULL,
    frequency          TEXT NOT NULL,
    budget_cents       BIGINT NOT NULL,
    status             TEXT NOT NULL,           -- issued | started | stopped | ended | withdrawn
    assigned_on        DATE NOT NULL,
    started_on         DATE,
    stopped_on         DATE,
    granted_product_id TEXT NOT NULL,
    replaces_number    BIGINT,
    replaced_by_number BIGINT,
    last_change        TEXT NOT NULL,
    event_time         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (municipality, number)
);
CREATE INDEX assignments_group ON assignments (municipality, segment_code, subsegment_code, agb_code);

-- Registration: contracts and their lumpsum budgets.
CREATE TABLE contracts (
    contract_id     TEXT PRIMARY KEY,
    agb_code        TEXT NOT NULL,
    segment_code    TEXT NOT NULL,
    subsegments     TEXT[] NOT NULL,            -- empty: the whole segment
    municipalities  TEXT[] NOT NULL,
    period_start    DATE NOT NULL,
    period_end      DATE,
    event_time      TIMESTAMPTZ NOT NULL
);

CREATE TABLE contract_budgets (
    contract_id     TEXT NOT NULL,
    municipality    TEXT NOT NULL,
    year            INT NOT NULL,
    amount_cents    BIGINT NOT NULL,
    PRIMARY KEY (contract_id, municipality, year)
);
