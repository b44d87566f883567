-- The NEN 7513 audit trail (rz_platform::audit): one row per read or change of a resident's
-- personal data. No BSN and no names: the client key is the pseudonym, the person is the token's
-- subject. Rows form a hash chain: hash = SHA-256(prev_hash || the row's fields, length-prefixed),
-- written under an advisory lock so that there is one chain per database.
CREATE TABLE audit_log (
    seq           BIGINT PRIMARY KEY,
    at            TIMESTAMPTZ NOT NULL,
    organisation  TEXT NOT NULL,              -- urn:regiozorg:<kind>:<id>
    person        TEXT NOT NULL DEFAULT '',   -- the token's subject where a person called
    role          TEXT NOT NULL DEFAULT '',
    system        TEXT NOT NULL,              -- the service that recorded the access
    client_key    TEXT NOT NULL,
    municipality  TEXT NOT NULL,
    action        TEXT NOT NULL,
    purpose       TEXT NOT NULL DEFAULT '',
    prev_hash     BYTEA NOT NULL,
    hash          BYTEA NOT NULL
);
CREATE INDEX audit_log_client ON audit_log (municipality, client_key, seq DESC);
CREATE INDEX audit_log_client_key ON audit_log (client_key, seq DESC);

-- The retention the guard below enforces; the service's pruner writes its configured value here
-- before it deletes (one row).
CREATE TABLE audit_settings (
    id              BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    retention_secs  BIGINT NOT NULL CHECK (retention_secs >= 1)
);
INSERT INTO audit_settings (retention_secs) VALUES (1826 * 86400);

-- Append-only: UPDATE and TRUNCATE are always refused, DELETE of an entry younger than the
-- retention too (the pruner deletes the oldest entries only, so the chain stays verifiable from
-- the oldest kept entry).
CREATE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    keep BIGINT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT retention_secs INTO keep FROM audit_settings;
        IF keep IS NULL OR OLD.at > now() - make_interval(secs => keep) THEN
            RAISE EXCEPTION 'audit_log is append-only: entry % is within the retention period', OLD.seq
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_guard();
CREATE TRIGGER audit_log_retention BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_guard();
