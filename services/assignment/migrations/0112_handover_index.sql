-- The metrics sample the handover's replacements per municipality every few seconds
-- (`rz_handover_replacements`). Without an index that was a scan of every assignment. The
-- predicate and the key name columns an assignment never changes (origin, municipality), so
-- reporting a start stays a HOT update (see migration `hot_start`).
CREATE INDEX assignments_handover ON assignments (municipality) WHERE origin = 'handover';
