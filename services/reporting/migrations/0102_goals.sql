-- The region's goal each granted product serves (access' goal code, '' when the event named none),
-- and scaling down: the end set by the product's last AMENDMENT_END (NULL: never ended early), with
-- the product version of that amendment, so an older END replayed after a newer one does not win.
ALTER TABLE granted_products ADD COLUMN goal TEXT NOT NULL DEFAULT '';
ALTER TABLE granted_products ADD COLUMN scaled_down_to DATE;
ALTER TABLE granted_products ADD COLUMN scaled_down_version BIGINT;
