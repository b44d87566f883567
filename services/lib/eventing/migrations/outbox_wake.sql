-- New outbox rows are no longer announced with NOTIFY from inside the writing transaction. Such a
-- NOTIFY takes PostgreSQL's server-wide notify lock at commit and holds it through the commit's WAL
-- flush, so with synchronous_commit on every outbox commit of every database on the server waited
-- for the one before it (measured with pgbench, 32 clients, durable: 12,178 single-row insert
-- commits/s without a NOTIFY, 1,448 with one). The writer's own process now wakes its relay
-- (rz_eventing::outbox::enqueue); relays of other replicas find the rows by their poll.
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
DROP FUNCTION IF EXISTS outbox_notify();
