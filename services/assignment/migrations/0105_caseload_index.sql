-- A provider is chosen by its caseload: the active assignments of a subsegment in a municipality
-- that are still valid on the date. The count read every row of them from the table (for
-- valid_until): 0.2 ms a choice with 20,000 clients in care, 1.7 ms with 200,000. With valid_until
-- in the index the count is an index-only scan.
CREATE INDEX assignments_caseload_valid ON assignments (municipality, subsegment_code, agb_code)
    INCLUDE (valid_until) WHERE status IN ('issued', 'started');
DROP INDEX assignments_caseload;
