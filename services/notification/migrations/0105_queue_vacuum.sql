-- Workers claim due rows through the partial indexes `deliveries_due` and `letters_due`. Each claim
-- and each outcome leaves a dead entry in them until a vacuum removes it, and every claim walks over
-- those entries from the oldest on. Delivered rows are kept, so at the default scale factor (20 % of
-- the table) autovacuum comes round less and less often as the table grows: vacuum after a fixed
-- number of changed rows instead, as for the outbox (migration `outbox_vacuum`).
ALTER TABLE deliveries SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 50000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 50000
);
ALTER TABLE letters SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000
);
