-- The standard's messages this service sent to providers (JW301/WMO301 for an issued or changed
-- assignment, JW319/WMO319 for a refused request), kept as the event payload they were made
-- from, so a provider can fetch them as XML. Written in the same transaction as the event.

-- The last message number per municipality: BerichtIdentificatie is the number in decimal
-- (at most 12 characters), unique per municipality (also for return messages).
CREATE TABLE message_counters (
    municipality  TEXT PRIMARY KEY,
    last_number   BIGINT NOT NULL CHECK (last_number BETWEEN 1 AND 999999999999)
);

CREATE TABLE provider_messages (
    municipality  TEXT NOT NULL,
    message_id    TEXT NOT NULL CHECK (length(message_id) BETWEEN 1 AND 12),
    seq           BIGINT NOT NULL,
    agb_code      TEXT NOT NULL,
    -- 'assignment': payload is an AssignmentMessage (301); 'answer': a RequestAnswered (319).
    kind          TEXT NOT NULL CHECK (kind IN ('assignment', 'answer')),
    payload       BYTEA NOT NULL,
    message_date  DATE NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (municipality, message_id)
);
CREATE INDEX provider_messages_provider ON provider_messages (agb_code, municipality, seq);

-- ReferentieAanbieder of requests received as XML (315/317); the answer (319/301) quotes it.
-- A request made over gRPC has none: its id (a UUID, 36 characters) is quoted instead.
CREATE TABLE request_references (
    request_id  UUID PRIMARY KEY REFERENCES provider_requests (id),
    reference   TEXT NOT NULL CHECK (length(reference) BETWEEN 1 AND 36)
);
