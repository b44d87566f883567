-- The providers' messages received as XML (305, 307, 315, 317), by identification: the standard's
-- rule TR056 (WJ001 9056, "Identificatie moet uniek zijn") refuses a message whose Identificatie
-- its sender already used for a message of the same kind (BerichtCode: law and message, e.g.
-- 'JW305'). A message is recorded here when its records are judged (not when it was refused as a
-- whole: unreadable, another municipality, a Dagtekening in the future), in its own transaction
-- before any record is applied, so two concurrent uploads of the same message apply it once.
-- Holds no personal data: sender, message, identification, dates.
CREATE TABLE received_messages (
    agb_code      TEXT NOT NULL CHECK (agb_code ~ '^[0-9]{8}$'),
    message       TEXT NOT NULL CHECK (message ~ '^(JW|WMO)3[0-9]{2}$'),
    message_id    TEXT NOT NULL CHECK (length(message_id) BETWEEN 1 AND 12),
    message_date  DATE NOT NULL,
    municipality  TEXT NOT NULL,
    received_on   DATE NOT NULL,
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (agb_code, message, message_id)
);
