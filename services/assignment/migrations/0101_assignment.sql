-- Assignments (toewijzingen). Regional, partitioned by municipality: every key starts with the
-- municipality's CBS code.

-- The last assignment number issued per municipality (ToewijzingNummer: at most 9 digits).
CREATE TABLE assignment_counters (
    municipality  TEXT PRIMARY KEY,
    last_number   BIGINT NOT NULL CHECK (last_number BETWEEN 1 AND 999999999)
);

CREATE TABLE assignments (
    municipality        TEXT NOT NULL,
    number              BIGINT NOT NULL CHECK (number BETWEEN 1 AND 999999999),
    client_key          TEXT NOT NULL,
    agb_code            TEXT NOT NULL,
    law                 TEXT NOT NULL CHECK (law IN ('jeugdwet', 'wmo')),
    segment_code        TEXT NOT NULL,
    subsegment_code     TEXT NOT NULL,
    product_category    TEXT NOT NULL,
    product_code        TEXT NOT NULL DEFAULT '',
    start_date          DATE NOT NULL,
    end_date            DATE CHECK (end_date >= start_date),
    execution_variant   TEXT NOT NULL CHECK (execution_variant IN ('taakgericht', 'outputgericht', 'inspanningsgericht')),
    volume              INT CHECK (volume BETWEEN 1 AND 99999999),
    unit                TEXT,
    frequency           TEXT,
    budget_cents        BIGINT CHECK (budget_cents BETWEEN 1 AND 99999999),
    status              TEXT NOT NULL CHECK (status IN ('issued', 'started', 'stopped', 'ended', 'withdrawn')),
    assigned_on         DATE NOT NULL,
    change_reason       TEXT NOT NULL DEFAULT '',
    started_on          DATE,
    stopped_on          DATE,
    end_reason          TEXT NOT NULL DEFAULT '',
    withdrawn_on        DATE,
    -- The last day the assignment is valid; before start_date when it never took effect.
    valid_until         DATE,
    choice_reason       TEXT NOT NULL,
    origin              TEXT NOT NULL CHECK (origin IN ('decision', 'request', 'import', 'handover')),
    granted_product_id  TEXT,
    granted_version     INT,
    product_version     INT NOT NULL DEFAULT 0,
    preferred_agb       TEXT,
    request_id          UUID,
    replaces_number     BIGINT,
    replaced_by_number  BIGINT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality, number),
    FOREIGN KEY (municipality, replaces_number) REFERENCES assignments (municipality, number),
    FOREIGN KEY (municipality, replaced_by_number) REFERENCES assignments (municipality, number),
    CHECK (origin <> 'decision' OR (granted_product_id IS NOT NULL AND granted_version IS NOT NULL))
);
-- A granted product (in one version) is assigned once, however often its event is delivered.
CREATE UNIQUE INDEX assignments_granted_product ON assignments (granted_product_id, granted_version)
    WHERE origin = 'decision';
-- An assignment has at most one (not withdrawn) replacement.
CREATE UNIQUE INDEX assignments_one_replacement ON assignments (municipality, replaces_number)
    WHERE replaces_number IS NOT NULL AND status <> 'withdrawn';
CREATE INDEX assignments_client ON assignments (municipality, client_key, subsegment_code);
CREATE INDEX assignments_provider ON assignments (agb_code, municipality);
CREATE INDEX assignments_caseload ON assignments (municipality, subsegment_code, agb_code)
    WHERE status IN ('issued', 'started');
CREATE INDEX assignments_product ON assignments (granted_product_id) WHERE granted_product_id IS NOT NULL;

-- Granted products that could not be assigned (no contracted provider, stacking), with the reason.
CREATE TABLE unassigned_products (
    granted_product_id  TEXT NOT NULL,
    granted_version     INT NOT NULL,
    municipality        TEXT NOT NULL,
    client_key          TEXT NOT NULL,
    law                 TEXT NOT NULL,
    segment_code        TEXT NOT NULL,
    subsegment_code     TEXT NOT NULL,
    start_date          DATE NOT NULL,
    end_date            DATE,
    reason_code         TEXT NOT NULL CHECK (reason_code IN ('no_contracted_provider', 'stacking')),
    reason              TEXT NOT NULL,
    decided_on          DATE NOT NULL,
    recorded_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (granted_product_id, granted_version)
);
CREATE INDEX unassigned_products_municipality ON unassigned_products (municipality, decided_on);

-- Provider requests: 315 (verzoek om toewijzing) and 317 (verzoek om wijziging), and their answer.
CREATE TABLE provider_requests (
    id                  UUID PRIMARY KEY,
    kind                TEXT NOT NULL CHECK (kind IN ('assignment', 'change')),
    municipality        TEXT NOT NULL,
    agb_code            TEXT NOT NULL,
    client_key          TEXT NOT NULL,
    subsegment_code     TEXT NOT NULL,
    assignment_number   BIGINT,
    product_code        TEXT NOT NULL DEFAULT '',
    start_date          DATE,
    end_date            DATE,
    execution_variant   TEXT,
    volume              INT,
    unit                TEXT,
    frequency           TEXT,
    budget_cents        BIGINT,
    request_reason      TEXT NOT NULL DEFAULT '',
    referrer_type       TEXT,
    referrer_name       TEXT NOT NULL DEFAULT '',
    referrer_agb        TEXT NOT NULL DEFAULT '',
    status              TEXT NOT NULL CHECK (status IN ('open', 'granted', 'refused')),
    received_on         DATE NOT NULL,
    answer_due          DATE NOT NULL,
    answered_on         DATE,
    refusal_reason      TEXT NOT NULL DEFAULT '',
    resulting_assignment_number BIGINT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    FOREIGN KEY (municipality, assignment_number) REFERENCES assignments (municipality, number),
    CHECK (kind = 'assignment' OR assignment_number IS NOT NULL)
);
-- One open request for an assignment per client and subsegment; one open change per assignment.
CREATE UNIQUE INDEX provider_requests_one_open_assignment
    ON provider_requests (municipality, client_key, subsegment_code)
    WHERE status = 'open' AND kind = 'assignment';
CREATE UNIQUE INDEX provider_requests_one_open_change
    ON provider_requests (municipality, assignment_number)
    WHERE status = 'open' AND kind = 'change';
CREATE INDEX provider_requests_open ON provider_requests (municipality, answer_due) WHERE status = 'open';

-- The BSN of a client this service received directly (a provider's 315, an import) and that the
-- municipality's access may not know; used only to address the standard's message to a provider.
CREATE TABLE client_identities (
    municipality  TEXT NOT NULL,
    client_key    TEXT NOT NULL,
    bsn           TEXT NOT NULL,
    PRIMARY KEY (municipality, client_key)
);

-- Client-chosen idempotency keys of create commands (scoped by caller: `<agb>/<key>`, `import/<key>`).
CREATE TABLE idempotency_keys (
    key          TEXT PRIMARY KEY,
    operation    TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    resource_id  TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
