//! What the standard's rules need to know about earlier messages of a provider: the
//! identifications it used (TR056, table `received_messages`) and the ReferentieAanbieder of its
//! requests (TR347, table `request_references`).

use chrono::NaiveDate;
use rz_domain::AgbCode;
use rz_istandaarden as ist;
use sqlx::PgConnection;

/// The message's name as the key of TR056: `JW305`, `WMO307`, ... (the BerichtCode's message).
fn message_name(h: &ist::ReceivedHeader) -> String {
    h.message_type.name(h.law)
}

/// Claims the identification of a received message for its sender and message kind (TR056):
/// `false` when the sender used it before for this kind of message. Committed at once (an
/// autocommit statement), so concurrent uploads of one message claim it once.
pub(crate) async fn claim_identification(
    conn: &mut PgConnection,
    h: &ist::ReceivedHeader,
    today: NaiveDate,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO received_messages (agb_code, message, message_id, message_date, municipality, received_on)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (agb_code, message, message_id) DO NOTHING",
    )
    .bind(h.sender_agb.as_str())
    .bind(message_name(h))
    .bind(h.message_id.as_str())
    .bind(h.message_date)
    .bind(h.receiver_municipality.as_str())
    .bind(today)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives a claimed identification back, when the message could not be processed at all (an
/// unavailable dependency): the provider may send it again.
pub(crate) async fn release_identification(
    conn: &mut PgConnection,
    h: &ist::ReceivedHeader,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM received_messages WHERE agb_code = $1 AND message = $2 AND message_id = $3",
    )
    .bind(h.sender_agb.as_str())
    .bind(message_name(h))
    .bind(h.message_id.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Whether provider `agb` used `reference` as ReferentieAanbieder of an earlier request (315 or
/// 317) received as XML (TR347).
pub(crate) async fn reference_used(
    conn: &mut PgConnection,
    agb: &AgbCode,
    reference: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (
             SELECT 1 FROM request_references rr
             JOIN provider_requests pr ON pr.id = rr.request_id
             WHERE pr.agb_code = $1 AND rr.reference = $2)",
    )
    .bind(agb.as_str())
    .bind(reference)
    .fetch_one(&mut *conn)
    .await
}
