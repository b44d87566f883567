-- The service runs as a role that cannot change the schema (`assignment migrate --grant-to`), but
-- next_municipality_number creates a municipality's number sequence on its first use. It runs as
-- its owner (the migration role) instead of its caller, with a fixed search_path so that a caller
-- cannot put an object of its own in the way. Nothing else changes: the caller still gets the next
-- number of the municipality's sequence.
ALTER FUNCTION next_municipality_number(TEXT, TEXT) SECURITY DEFINER SET search_path = public, pg_temp;
REVOKE ALL ON FUNCTION next_municipality_number(TEXT, TEXT) FROM PUBLIC;
