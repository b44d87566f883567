-- The messages sent before provider_messages existed, recovered from the outbox (which keeps every
-- event with its payload): each `issued`/`changed` event to a provider is a 301, each
-- `request_answered` of a request that is refused now is a 319. They are numbered per
-- municipality in the order they were written (the outbox id is a UUIDv7) and dated on the day
-- the event occurred, after any numbers used already. Events no longer in the outbox give no
-- message; events since migration 102 (provider_messages) were recorded when they were written.
WITH sent AS (
    SELECT o.id,
           split_part(o.source, '/', 3) AS municipality,
           reverse(split_part(reverse(o.nats_subject), '.', 2)) AS agb_code,
           CASE WHEN o.event_type = 'nl.regiozorg.assignment.request_answered.v1'
                THEN 'answer' ELSE 'assignment' END AS kind,
           o.payload,
           o.occurred_at
    FROM outbox o
    WHERE (o.event_type IN ('nl.regiozorg.assignment.issued.v1', 'nl.regiozorg.assignment.changed.v1')
       OR (o.event_type = 'nl.regiozorg.assignment.request_answered.v1'
           AND EXISTS (SELECT 1 FROM provider_requests r
                       WHERE r.id::text = o.subject AND r.status = 'refused')))
      -- Events since migration 102 are recorded already. (Written against the earlier runner's
      -- schema_migrations as version 3; rz_platform::db takes such a database over with that time.)
      AND o.occurred_at < COALESCE(
          (SELECT m.installed_on FROM _sqlx_migrations m WHERE m.version = 102), now())
),
numbered AS (
    SELECT s.*, row_number() OVER (PARTITION BY s.municipality ORDER BY s.id)
                + COALESCE((SELECT c.last_number FROM message_counters c
                            WHERE c.municipality = s.municipality), 0) AS seq
    FROM sent s
)
INSERT INTO provider_messages (municipality, message_id, seq, agb_code, kind, payload, message_date, created_at)
SELECT municipality, seq::text, seq, agb_code, kind, payload, occurred_at::date, occurred_at
FROM numbered;

INSERT INTO message_counters (municipality, last_number)
SELECT municipality, max(seq) FROM provider_messages GROUP BY municipality
ON CONFLICT (municipality) DO UPDATE
    SET last_number = GREATEST(message_counters.last_number, EXCLUDED.last_number);
