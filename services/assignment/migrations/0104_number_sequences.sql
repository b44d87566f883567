-- Assignment and message numbers from a sequence per municipality instead of a counter row.
--
-- The counter rows (assignment_counters, message_counters) were updated inside the transaction that
-- used the number, so their row lock was held until that transaction ended: every other
-- transaction of the municipality that needed a number waited for it (a batch of decisions, a
-- handover run, an import), and two of them taking both counters in different order could
-- deadlock. A sequence hands out a number without a lock. A number taken by a transaction that
-- then rolls back is never used (a gap); the standard asks numbers to be unique, not gapless.
--
-- The sequence of a municipality is created on its first use, starting after the highest number
-- the counter row or the table holds, so numbers given out before this migration are not
-- repeated. From then on the counter rows are no longer written (they stay as a record).
-- The transaction that makes a sequence holds it (and makes others of its municipality wait) until
-- it ends; if it rolls back, the sequence goes with it, and with it the numbers it took (never
-- visible outside it), and the next user makes it again.
-- Never drop such a sequence: it is the only record of the last number given out.

CREATE FUNCTION next_municipality_number(counter TEXT, municipality TEXT) RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    seq   TEXT;
    since BIGINT;
    top   BIGINT;
BEGIN
    IF municipality !~ '^[0-9]{4}$' THEN
        RAISE EXCEPTION 'municipality code % is not 4 digits', municipality;
    END IF;
    IF counter = 'assignment' THEN
        seq := 'assignment_numbers_' || municipality;
        top := 999999999;
    ELSIF counter = 'message' THEN
        seq := 'message_numbers_' || municipality;
        top := 999999999999;
    ELSE
        RAISE EXCEPTION 'unknown counter %', counter;
    END IF;
    IF to_regclass(seq) IS NULL THEN
        -- Created once per municipality; concurrent first users wait for each other here.
        PERFORM pg_advisory_xact_lock(hashtextextended('sequence|' || seq, 0));
        IF to_regclass(seq) IS NULL THEN
            IF counter = 'assignment' THEN
                SELECT GREATEST(
                    (SELECT c.last_number FROM assignment_counters c WHERE c.municipality = $2),
                    (SELECT max(a.number) FROM assignments a WHERE a.municipality = $2))
                INTO since;
            ELSE
                SELECT GREATEST(
                    (SELECT c.last_number FROM message_counters c WHERE c.municipality = $2),
                    (SELECT max(p.seq) FROM provider_messages p WHERE p.municipality = $2))
                INTO since;
            END IF;
            EXECUTE format(
                'CREATE SEQUENCE IF NOT EXISTS %I AS bigint MINVALUE 1 MAXVALUE %s START WITH %s',
                seq, top, COALESCE(since, 0) + 1);
        END IF;
    END IF;
    RETURN nextval(seq::regclass);
END $$;
