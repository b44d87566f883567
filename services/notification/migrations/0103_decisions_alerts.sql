-- Letters about decisions (written per access event, per case) and about indications that are
-- about to end (written by a scan: no event, one per granted product and end date).
ALTER TABLE letters ALTER COLUMN event_id DROP NOT NULL;
ALTER TABLE letters ALTER COLUMN assignment_number DROP NOT NULL;
ALTER TABLE letters ADD COLUMN case_id UUID;
ALTER TABLE letters ADD COLUMN product_id UUID;
ALTER TABLE letters ADD COLUMN ends_on DATE;
-- A case is decided once: one decision letter per case, whatever the event ids.
CREATE UNIQUE INDEX letters_decision_once ON letters (case_id, kind)
    WHERE kind IN ('decision_granted', 'decision_refused');
-- Never twice the same reminder: one per product and end date (an extension makes a new one).
CREATE UNIQUE INDEX letters_ending_once ON letters (product_id, ends_on)
    WHERE kind = 'indication_ending';
CREATE INDEX letters_client ON letters (municipality, client_key, created_at);

-- Alerts for access staff on statutory and chain deadlines. One row per deadline (`key`),
-- updated as its state changes: upcoming -> overdue -> resolved. No BSN and no name.
CREATE TABLE staff_alerts (
    id                 UUID PRIMARY KEY,
    key                TEXT NOT NULL UNIQUE,
    source             TEXT NOT NULL CHECK (source IN ('access', 'assignment')),
    municipality       TEXT NOT NULL,
    kind               TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('upcoming', 'overdue', 'resolved')),
    due                DATE NOT NULL,
    client_key         TEXT,
    case_id            UUID,
    agb_code           TEXT,
    assignment_number  BIGINT,
    request_id         TEXT,
    opened_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    overdue_at         TIMESTAMPTZ,
    resolved_at        TIMESTAMPTZ,
    last_scanned_on    DATE NOT NULL
);
CREATE INDEX staff_alerts_list ON staff_alerts (municipality, state, due);
CREATE INDEX staff_alerts_open ON staff_alerts (source, municipality) WHERE state <> 'resolved';
