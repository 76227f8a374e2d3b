-- How many events a spool_shed loss event says it shed: the spool keeps
-- CRITICAL and loss events, so a range may hold more seqs than were shed,
-- and a gap is accounted only up to the count. NULL (rows from before)
-- counts as the whole range.
ALTER TABLE chain_losses ADD COLUMN loss_count bigint CHECK (loss_count > 0);
