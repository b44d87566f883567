//! Set-based statements for a batch of imports ([`crate::import`]): one statement for what the
//! single path does once per item (locks, the stacking check, numbers, idempotency keys,
//! identities, provider messages).

use chrono::NaiveDate;
use rz_platform::sealing::Keyring;
use sqlx::PgConnection;

use super::identities::seal as seal_identity;

/// Takes the advisory locks of `keys` (as [`super::lock`] does one), in one order so two
/// batches cannot deadlock on them.
pub async fn lock_all(tx: &mut PgConnection, keys: &[String]) -> Result<(), sqlx::Error> {
    let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    keys.sort_unstable();
    keys.dedup();
    sqlx::query(
        "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0)))
         FROM (SELECT k FROM unnest($1::text[]) AS u(k) ORDER BY k) s",
    )
    .bind(&keys)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One import's place in the stacking check: municipality, client key, subsegment, period.
pub struct Slot<'a> {
    pub municipality: &'a str,
    pub client_key: &'a str,
    pub subsegment: &'a str,
    pub start: NaiveDate,
    pub end: Option<NaiveDate>,
}

/// Whether any slot overlaps a stored assignment of its client and subsegment (the rule of
/// [`super::overlapping`]).
pub async fn any_overlapping(
    tx: &mut PgConnection,
    slots: &[Slot<'_>],
) -> Result<bool, sqlx::Error> {
    let ms: Vec<&str> = slots.iter().map(|s| s.municipality).collect();
    let keys: Vec<&str> = slots.iter().map(|s| s.client_key).collect();
    let subs: Vec<&str> = slots.iter().map(|s| s.subsegment).collect();
    let starts: Vec<NaiveDate> = slots.iter().map(|s| s.start).collect();
    let ends: Vec<Option<NaiveDate>> = slots.iter().map(|s| s.end).collect();
    sqlx::query_scalar(
        "SELECT EXISTS (
             SELECT 1 FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::date[])
                 AS u(m, k, s, st, en)
             JOIN assignments a
               ON a.municipality = u.m AND a.client_key = u.k AND a.subsegment_code = u.s
             WHERE (a.valid_until IS NULL OR a.valid_until >= a.start_date)
               AND a.start_date <= COALESCE(u.en, 'infinity'::date)
               AND COALESCE(a.valid_until, 'infinity'::date) >= u.st)",
    )
    .bind(&ms)
    .bind(&keys)
    .bind(&subs)
    .bind(&starts)
    .bind(&ends)
    .fetch_one(&mut *tx)
    .await
}

/// The next number (`kind`: `assignment` or `message`) of each municipality in `municipalities`,
/// in their order (a municipality named twice gets two numbers).
pub async fn next_numbers(
    tx: &mut PgConnection,
    kind: &str,
    municipalities: &[&str],
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT next_municipality_number($1, m)
         FROM unnest($2::text[]) WITH ORDINALITY AS u(m, ord) ORDER BY ord",
    )
    .bind(kind)
    .bind(municipalities)
    .fetch_all(&mut *tx)
    .await
}

/// The next assignment number of each municipality in `municipalities`, in their order.
pub async fn assignment_numbers(
    tx: &mut PgConnection,
    municipalities: &[&str],
) -> Result<Vec<u32>, sqlx::Error> {
    next_numbers(tx, "assignment", municipalities)
        .await?
        .into_iter()
        .map(super::number)
        .collect()
}

/// Claims idempotency keys `(key, fingerprint, resource id)` of `operation`; the number claimed
/// (fewer than given: some key existed, and nothing tells which).
pub async fn claim_new_keys(
    tx: &mut PgConnection,
    operation: &str,
    keys: &[(&str, &str, String)],
) -> Result<u64, sqlx::Error> {
    let k: Vec<&str> = keys.iter().map(|x| x.0).collect();
    let f: Vec<&str> = keys.iter().map(|x| x.1).collect();
    let r: Vec<&str> = keys.iter().map(|x| x.2.as_str()).collect();
    Ok(sqlx::query(
        "INSERT INTO idempotency_keys (key, operation, fingerprint, resource_id)
         SELECT k, $1, f, r FROM unnest($2::text[], $3::text[], $4::text[]) AS u(k, f, r)
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(operation)
    .bind(&k)
    .bind(&f)
    .bind(&r)
    .execute(&mut *tx)
    .await?
    .rows_affected())
}

/// Keeps the BSNs `(municipality, client key, BSN)`, sealed, as [`super::save_identity`] keeps
/// one (a client named twice is kept once).
pub async fn save_identities(
    tx: &mut PgConnection,
    keys: &Keyring,
    identities: &[(&str, &str, &str)],
) -> Result<(), sqlx::Error> {
    let mut seen = std::collections::HashSet::new();
    let (mut ms, mut ks, mut sealed) = (Vec::new(), Vec::new(), Vec::new());
    for (m, k, bsn) in identities {
        if seen.insert((*m, *k)) {
            ms.push(*m);
            ks.push(*k);
            sealed.push(seal_identity(keys, m, k, bsn)?.bytes);
        }
    }
    if ms.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO client_identities (municipality, client_key, bsn, sealed, key_id)
         SELECT m, k, NULL, s, $4 FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(m, k, s)
         ON CONFLICT (municipality, client_key)
         DO UPDATE SET bsn = NULL, sealed = EXCLUDED.sealed, key_id = EXCLUDED.key_id",
    )
    .bind(&ms)
    .bind(&ks)
    .bind(&sealed)
    .bind(keys.current())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One message to a provider: municipality, AGB code, kind (`assignment`), payload.
pub struct NewMessage<'a> {
    pub municipality: &'a str,
    pub agb_code: &'a str,
    pub kind: &'a str,
    pub payload: Vec<u8>,
}

/// Numbers, seals and records messages to providers as [`super::record_provider_message`] does
/// one.
pub async fn record_provider_messages(
    tx: &mut PgConnection,
    keys: &Keyring,
    messages: &[NewMessage<'_>],
    date: NaiveDate,
) -> Result<(), sqlx::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let ms: Vec<&str> = messages.iter().map(|m| m.municipality).collect();
    let seqs = next_numbers(tx, "message", &ms).await?;
    let ids: Vec<String> = seqs.iter().map(i64::to_string).collect();
    let mut payloads = Vec::with_capacity(messages.len());
    for (m, id) in messages.iter().zip(&ids) {
        payloads.push(super::messages::seal_payload(keys, m.municipality, id, &m.payload)?.bytes);
    }
    let agbs: Vec<&str> = messages.iter().map(|m| m.agb_code).collect();
    let kinds: Vec<&str> = messages.iter().map(|m| m.kind).collect();
    sqlx::query(
        "INSERT INTO provider_messages (municipality, message_id, seq, agb_code, kind, payload,
                                        key_id, message_date)
         SELECT m, id, seq, agb, kind, payload, $7, $8
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bytea[])
             AS u(m, id, seq, agb, kind, payload)",
    )
    .bind(&ms)
    .bind(&ids)
    .bind(&seqs)
    .bind(&agbs)
    .bind(&kinds)
    .bind(&payloads)
    .bind(keys.current())
    .bind(date)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
