-- COD046 Geslacht of a resident, for the client block of the standard's assignment message (301):
-- 0 onbekend (the default, also for residents registered before this column), 1 mannelijk,
-- 2 vrouwelijk.
ALTER TABLE residents ADD COLUMN gender SMALLINT NOT NULL DEFAULT 0 CHECK (gender IN (0, 1, 2));
