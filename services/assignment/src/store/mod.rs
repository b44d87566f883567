//! The PostgreSQL store. Every function takes the connection or transaction it works in; the
//! callers decide the transaction boundaries (state change + outbox events together).
//!
//! One file per section; callers use the items re-exported here (`store::load_assignment`, ...).

mod assignments;
pub mod bulk;
mod declarations;
mod extent;
mod gauges;
mod identities;
mod messages;
mod requests;
mod unassigned;

pub use assignments::{
    AssignmentFilter, active_for_product, caseloads, decision_handled, handover_candidates,
    insert_assignment, insert_assignments, list_assignments, load_assignment, overlapping,
    product_known, replacements, unreplaced_active, update_assignment,
};
pub use declarations::{
    DeclarationRecord, NewLine, StoredLine, declaration_known, insert_declaration, stored_lines,
    stored_lines_of_assignments,
};
pub use gauges::{
    OpenOverdue, handover_replacements, request_answer_deadlines, start_of_care_deadlines,
};
pub use identities::{identity, save_identity, seal_identities};
pub use messages::{
    StoredMessage, list_provider_messages, next_message_number, record_provider_message,
    request_reference, save_request_reference, seal_provider_messages,
};
pub use requests::{
    insert_request, load_request, open_request_like, open_requests, update_request,
};
pub use unassigned::{Unassigned, insert_unassigned, list_unassigned};

use rz_domain::FieldError;
use rz_platform::db::Migration;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

/// The shared eventing migrations under their one version, then the service's own (versions
/// above `rz_eventing::SHARED_VERSIONS_END`, each file named after its version).
pub const MIGRATIONS: &[Migration] = rz_platform::migrations![
    101 "assignment" => "0101_assignment.sql",
    102 "provider_messages" => "0102_provider_messages.sql",
    103 "provider_messages_backfill" => "0103_provider_messages_backfill.sql",
    104 "number_sequences" => "0104_number_sequences.sql",
    105 "caseload_index" => "0105_caseload_index.sql",
    106 "hot_start" => "0106_hot_start.sql",
    107 "received_messages" => "0107_received_messages.sql",
    110 "declarations" => "0110_declarations.sql",
    111 "number_sequences_definer" => "0111_number_sequences_definer.sql",
    112 "handover_index" => "0112_handover_index.sql",
    113 "sealed_personal_data" => "0113_sealed_personal_data.sql",
];

fn decode_err(what: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unexpected {what} `{value}` in the database").into())
}

/// A text column read into its domain type (`GemeenteCode::parse`, `AgbCode::parse`, ...): a
/// value that does not parse is a decode error naming the column.
fn parsed<T>(
    row: &PgRow,
    column: &str,
    parse: fn(&str) -> Result<T, FieldError>,
) -> Result<T, sqlx::Error> {
    let v: String = row.try_get(column)?;
    parse(&v).map_err(|_| decode_err(column, &v))
}

fn number(v: i64) -> Result<u32, sqlx::Error> {
    u32::try_from(v).map_err(|_| decode_err("assignment number", &v.to_string()))
}

fn opt_number(v: Option<i64>) -> Result<Option<u32>, sqlx::Error> {
    v.map(number).transpose()
}

// --- idempotency keys ---

pub use rz_platform::idempotency::{Claim, claim_key};

// --- numbers and locks ---

/// The next assignment number of a municipality, from its sequence: no lock is held until the
/// transaction ends, so concurrent transactions of one municipality do not wait for each other;
/// a number of a transaction that rolls back stays unused (a gap).
pub async fn next_number(tx: &mut PgConnection, municipality: &str) -> Result<u32, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT next_municipality_number('assignment', $1)")
        .bind(municipality)
        .fetch_one(&mut *tx)
        .await?;
    number(n)
}

/// A transaction-scoped advisory lock on a text key (released at commit or rollback).
pub async fn lock(tx: &mut PgConnection, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(key)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
