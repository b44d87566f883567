//! The statement profile of a section: PostgreSQL's `pg_stat_statements` (loaded by
//! deploy/local-stack.sh when the server has it) is reset before a section and its heaviest
//! statements, by total execution time over every database of the run, are recorded after it.

use serde_json::json;
use sqlx::Connection;

use crate::BenchError;

/// Creates the extension in the admin database (once) and clears the counters. An error says why
/// the profile is not available (the library not preloaded, say); the bench goes on without it.
pub async fn reset(admin_url: &str) -> Result<(), BenchError> {
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&mut conn)
        .await?;
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// The `limit` statements with the most execution time since [`reset`], in the databases whose
/// names start with `db_prefix` (this run's services).
pub async fn top(
    admin_url: &str,
    db_prefix: &str,
    limit: i64,
) -> Result<serde_json::Value, BenchError> {
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    let rows: Vec<(String, String, i64, f64, f64, i64)> = sqlx::query_as(
        "SELECT d.datname::text, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 240),
                s.calls, s.total_exec_time, s.mean_exec_time, s.rows
         FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
         WHERE starts_with(d.datname, $1)
         ORDER BY s.total_exec_time DESC
         LIMIT $2",
    )
    .bind(db_prefix)
    .bind(limit)
    .fetch_all(&mut conn)
    .await?;
    let total: Option<(Option<f64>, Option<i64>)> = sqlx::query_as(
        "SELECT sum(s.total_exec_time), sum(s.calls)::bigint
         FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
         WHERE starts_with(d.datname, $1)",
    )
    .bind(db_prefix)
    .fetch_optional(&mut conn)
    .await?;
    conn.close().await?;
    let (total_ms, calls) = total.unwrap_or_default();
    Ok(json!({
        "all_statements_total_ms": total_ms,
        "all_statements_calls": calls,
        "top": rows
            .into_iter()
            .map(|(db, query, calls, total, mean, rows)| {
                json!({
                    "database": db.strip_prefix(db_prefix).unwrap_or(&db),
                    "query": query,
                    "calls": calls,
                    "total_ms": (total * 10.0).round() / 10.0,
                    "mean_ms": (mean * 1000.0).round() / 1000.0,
                    "rows": rows,
                })
            })
            .collect::<Vec<_>>(),
    }))
}
