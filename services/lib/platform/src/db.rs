//! The service's PostgreSQL pool and its embedded, ordered migrations.
//!
//! Migrations run through sqlx's [`Migrator`] (feature `migrate` only, no macros): each applied
//! migration is recorded in `_sqlx_migrations` with a SHA-384 checksum of its SQL. A start is
//! refused when
//! - an applied migration's SQL changed since ("migration N was previously applied but has been
//!   modified"): add a new migration instead;
//! - the database records a migration this build does not know ("migration N was previously
//!   applied but is missing in the resolved migrations"): a newer build migrated it;
//! - the list itself is malformed: versions not strictly increasing, a name twice, or a shared
//!   eventing migration under another version (see below).
//!
//! **One version for the shared migrations.** rz-eventing's outbox and inbox migrations
//! ([`rz_eventing::SHARED_MIGRATIONS`]) carry the same version and name in every service database;
//! versions up to [`rz_eventing::SHARED_VERSIONS_END`] are theirs, and a service numbers its own
//! migrations above (its files are named after their version).
//!
//! **Databases migrated before** (the demo's, a municipality's) were migrated by this module's
//! earlier runner, which recorded `(version, name, applied_at)` in `schema_migrations`, numbered
//! the shared migrations differently in each service and kept no checksums. Such a database is
//! taken over once, under the migration lock, in one transaction: each recorded migration is found
//! in this build's list by its name (names did not change; versions did), and recorded in
//! `_sqlx_migrations` under its current version, with its original time and the checksum of this
//! build's SQL (the old runner kept no text, so the SQL it applied is taken to be this one). A
//! recorded name this build does not know refuses the start. Nothing is run again. The takeover
//! happens only while `_sqlx_migrations` is empty, so it is done once; `schema_migrations` is left
//! as it was (no longer written), so an older build that is still starting during an upgrade finds
//! its migrations applied instead of running them again. (Keeping `schema_migrations` and adding
//! checksums to it was the other way: sqlx's migrator does the bookkeeping and the checks instead
//! of code of our own, in the table sqlx's tools know.)

use std::borrow::Cow;
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::migrate::{Migrate, MigrateError, MigrationType, Migrator};
use sqlx::postgres::{PgArguments, PgPoolOptions};
use sqlx::query::Query;
use sqlx::{Acquire, Arguments, AssertSqlSafe, PgConnection, PgPool, Postgres, SqlSafeStr};

use crate::config::DatabaseConfig;

/// One migration: a version (strictly increasing), a name and its SQL (may hold several
/// statements). It runs in its own transaction.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// One of rz-eventing's shared migrations, under its one version.
    pub const fn shared(m: rz_eventing::SharedMigration) -> Self {
        Self {
            version: m.version,
            name: m.name,
            sql: m.sql,
        }
    }
}

/// A service's migration list: rz-eventing's shared migrations under their one version, then the
/// service's own, each `version "name" => "file"` with the file in the crate's `migrations/` folder:
///
/// ```ignore
/// pub const MIGRATIONS: &[Migration] = rz_platform::migrations![
///     101 "access" => "0101_access.sql",
///     102 "resident_gender" => "0102_gender.sql",
/// ];
/// ```
#[macro_export]
macro_rules! migrations {
    ($($version:literal $name:literal => $file:literal),* $(,)?) => {
        &[
            $crate::db::Migration::shared(rz_eventing::OUTBOX_INBOX),
            $crate::db::Migration::shared(rz_eventing::OUTBOX_WAKE),
            $crate::db::Migration::shared(rz_eventing::OUTBOX_VACUUM),
            $crate::audit::MIGRATION,
            $($crate::db::Migration {
                version: $version,
                name: $name,
                sql: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $file)),
            },)*
        ]
    };
}

/// The table sqlx's migrator records applied migrations in.
const TABLE: &str = "_sqlx_migrations";
/// The table the earlier runner recorded them in (read once, by the takeover).
const OLD_TABLE: &str = "schema_migrations";
/// The advisory lock migrations run under (the earlier runner's, so an old and a new build starting
/// together also wait for each other).
const LOCK: i64 = 7428901;

pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(&config.url)
        .await
}

/// Applies the migrations not yet applied, each in its own transaction, after checking the applied
/// ones against their checksums, under an advisory lock so that replicas starting together do not
/// race. A database migrated by the earlier runner is taken over first (see the module doc).
pub async fn migrate(pool: &PgPool, migrations: &[Migration]) -> Result<(), sqlx::Error> {
    let migrator = migrator(migrations)?;
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK)
        .execute(&mut *conn)
        .await?;
    let result = apply(&mut conn, &migrator).await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK)
        .execute(&mut *conn)
        .await?;
    result.map_err(sqlx::Error::from)
}

async fn apply(conn: &mut PgConnection, migrator: &Migrator) -> Result<(), MigrateError> {
    take_over(conn, migrator).await?;
    let before = applied_versions(conn).await?;
    // `run_direct` is `run` on a connection: `run`'s `Acquire` bound is not general enough for a
    // future that must be `Send` (sqlx's own note on `run_direct`).
    migrator.run_direct(None, conn, false).await?;
    for m in migrator.iter().filter(|m| !before.contains(&m.version)) {
        tracing::info!(version = m.version, name = %m.description, "migration applied");
    }
    Ok(())
}

/// What [`check_applied`] found: the database is at this build's migrations, perhaps with newer
/// ones applied by a later release (expand, then contract).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaState {
    /// The highest version this build knows (all applied).
    pub version: i64,
    /// Applied migrations this build does not know (a newer release's), as `(version, name)`.
    pub newer: Vec<(i64, String)>,
}

/// Why a service that does not migrate (`[database] migrate = false`) refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the database has no migrations recorded (no `_sqlx_migrations`): run `{service} migrate` \
         (the `{service}-migrate` Job) first"
    )]
    NotMigrated { service: String },
    #[error(
        "migration {version} `{name}` is not applied: run this release's `{service} migrate` (the \
         `{service}-migrate` Job) before its pods"
    )]
    Missing {
        service: String,
        version: i64,
        name: String,
    },
    #[error(
        "migration {version} `{name}` was applied with other SQL than this build's (checksum): an \
         applied migration must never change"
    )]
    Changed { version: i64, name: String },
    #[error("migration {version} `{name}` failed halfway: repair it, then run `migrate` again")]
    Dirty { version: i64, name: String },
    #[error(transparent)]
    List(#[from] MigrateError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Checks, without changing anything, that every migration of `migrations` was applied with the
/// same SQL (checksum). Migrations applied by a newer release are reported in the result, not
/// refused: during a rolling upgrade the old release keeps serving on the expanded schema. Needs
/// no privilege beyond reading `_sqlx_migrations`.
pub async fn check_applied(
    pool: &PgPool,
    service: &str,
    migrations: &[Migration],
) -> Result<SchemaState, SchemaError> {
    let migrator = migrator(migrations)?;
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(TABLE)
        .fetch_one(pool)
        .await?;
    if table.is_none() {
        return Err(SchemaError::NotMigrated {
            service: service.to_owned(),
        });
    }
    let applied: Vec<(i64, String, bool, Vec<u8>)> = sqlx::query_as(
        "SELECT version, description, success, checksum FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(pool)
    .await?;
    for (version, name, success, _) in &applied {
        if !success {
            return Err(SchemaError::Dirty {
                version: *version,
                name: name.clone(),
            });
        }
    }
    for m in migrator.iter() {
        match applied.iter().find(|a| a.0 == m.version) {
            None => {
                return Err(SchemaError::Missing {
                    service: service.to_owned(),
                    version: m.version,
                    name: m.description.to_string(),
                });
            }
            Some((_, _, _, checksum)) if checksum.as_slice() != &*m.checksum => {
                return Err(SchemaError::Changed {
                    version: m.version,
                    name: m.description.to_string(),
                });
            }
            Some(_) => {}
        }
    }
    let newer = applied
        .into_iter()
        .filter(|a| migrator.iter().all(|m| m.version != a.0))
        .map(|(version, name, _, _)| (version, name))
        .collect();
    Ok(SchemaState {
        version: migrator.iter().map(|m| m.version).max().unwrap_or(0),
        newer,
    })
}

/// Whether `name` may be used as a role name in [`grant_runtime`] (it is joined into the SQL).
fn plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

/// The privileges of a service's runtime role: read and write the rows of every table (TRUNCATE:
/// reporting empties its read model to rebuild it; the audit trail's triggers refuse it there),
/// use the sequences, call the functions (some run as their owner: assignment's number
/// sequences); no CREATE, ALTER or DROP. `role` must exist (the database administrator
/// or CloudNativePG's managed roles create it).
pub const RUNTIME_PRIVILEGES: &str = "SELECT, INSERT, UPDATE, DELETE, TRUNCATE";

/// Grants `role` (a plain lowercase identifier) what a service needs at run time and nothing
/// more ([`RUNTIME_PRIVILEGES`] on every table of schema `public`, sequences, connecting), now
/// and for the tables the connected role creates later (default privileges). Creating in schema
/// `public` is taken from PUBLIC (PostgreSQL 15 and later never gave it; before 15 it did). Run by `<service>
/// migrate --grant-to ROLE` as the migration role, after the migrations.
pub async fn grant_runtime(pool: &PgPool, role: &str) -> Result<(), sqlx::Error> {
    if !plain_identifier(role) {
        return Err(sqlx::Error::Configuration(
            format!(
                "--grant-to `{role}`: a role name of lowercase letters, digits and _ (at most 63)"
            )
            .into(),
        ));
    }
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await?;
    let sql = format!(
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC;
         GRANT CONNECT ON DATABASE \"{database}\" TO {role};
         GRANT USAGE ON SCHEMA public TO {role};
         GRANT {RUNTIME_PRIVILEGES} ON ALL TABLES IN SCHEMA public TO {role};
         GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role};
         ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {RUNTIME_PRIVILEGES} ON TABLES TO {role};
         ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role};
         ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO {role};",
        database = database.replace('"', "\"\"")
    );
    // Only a checked role name and the database's own (quoted) name are joined into the SQL.
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(pool).await?;
    Ok(())
}

/// Whether the connected role may create objects in schema `public` (a runtime role should not).
pub async fn can_change_schema(pool: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT has_schema_privilege(current_user, 'public', 'CREATE')")
        .fetch_one(pool)
        .await
}

/// Checks the list and builds sqlx's migrator (its own lock off: [`migrate`] holds one across the
/// takeover and the run).
fn migrator(migrations: &[Migration]) -> Result<Migrator, MigrateError> {
    let invalid = |why: String| MigrateError::Source(why.into());
    let mut names = HashSet::new();
    let mut last = 0;
    for m in migrations {
        if m.version <= last {
            return Err(invalid(format!(
                "migration {} `{}` does not follow version {last}: versions must increase",
                m.version, m.name
            )));
        }
        last = m.version;
        if !names.insert(m.name) {
            return Err(invalid(format!(
                "migration name `{}` is listed twice",
                m.name
            )));
        }
        let shared = shared_migrations()
            .find(|s| s.version == m.version || s.name == m.name || s.sql == m.sql);
        match shared {
            Some(s) if (s.version, s.name, s.sql) == (m.version, m.name, m.sql) => {}
            Some(s) => {
                return Err(invalid(format!(
                    "migration {} `{}` is not rz-eventing's shared migration {} `{}`: list it \
                     with Migration::shared",
                    m.version, m.name, s.version, s.name
                )));
            }
            None if m.version <= rz_eventing::SHARED_VERSIONS_END => {
                return Err(invalid(format!(
                    "migration {} `{}`: versions up to {} are rz-eventing's",
                    m.version,
                    m.name,
                    rz_eventing::SHARED_VERSIONS_END
                )));
            }
            None => {}
        }
    }
    let mut migrator = Migrator::with_migrations(
        migrations
            .iter()
            .map(|m| {
                sqlx::migrate::Migration::new(
                    m.version,
                    Cow::Borrowed(m.name),
                    MigrationType::Simple,
                    m.sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    );
    migrator.set_locking(false);
    Ok(migrator)
}

/// The migrations every service shares under one version: rz-eventing's and the audit trail's
/// ([`crate::audit::MIGRATION`]).
fn shared_migrations() -> impl Iterator<Item = Migration> {
    rz_eventing::SHARED_MIGRATIONS
        .iter()
        .map(|m| Migration::shared(*m))
        .chain([crate::audit::MIGRATION])
}

async fn applied_versions(conn: &mut PgConnection) -> Result<HashSet<i64>, MigrateError> {
    conn.ensure_migrations_table(TABLE).await?;
    Ok(conn
        .list_applied_migrations(TABLE)
        .await?
        .into_iter()
        .map(|m| m.version)
        .collect())
}

/// Records the migrations of `schema_migrations` in `_sqlx_migrations`, once (see the module doc).
async fn take_over(conn: &mut PgConnection, migrator: &Migrator) -> Result<(), MigrateError> {
    let old: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(OLD_TABLE)
        .fetch_one(&mut *conn)
        .await?;
    if old.is_none() || !applied_versions(conn).await?.is_empty() {
        return Ok(());
    }
    let recorded: Vec<(i64, String, DateTime<Utc>)> =
        sqlx::query_as("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await?;
    let mut tx = conn.begin().await?;
    for (old_version, name, applied_at) in &recorded {
        let m = migrator
            .iter()
            .find(|m| m.description == name.as_str())
            .ok_or_else(|| {
                MigrateError::Source(
                    format!(
                        "{OLD_TABLE} records migration {old_version} `{name}`, which this build \
                         does not know"
                    )
                    .into(),
                )
            })?;
        sqlx::query(
            "INSERT INTO _sqlx_migrations
                 (version, description, installed_on, success, checksum, execution_time)
             VALUES ($1, $2, $3, TRUE, $4, -1)",
        )
        .bind(m.version)
        .bind(&*m.description)
        .bind(applied_at)
        .bind(&*m.checksum)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    tracing::info!(
        migrations = recorded.len(),
        "migrations recorded by the earlier runner taken over"
    );
    Ok(())
}

/// An `INSERT` of one row that names each column next to its value, instead of a column list and a
/// list of positional binds that must be kept in step:
///
/// ```ignore
/// InsertRow::new("assignments")
///     .value("municipality", &a.municipality)
///     .value("number", i64::from(a.number))
///     .query("")?
///     .execute(&mut *tx)
///     .await?;
/// ```
///
/// Column and table names are constants of the caller (they are joined into the SQL); every value
/// is a bind parameter.
pub struct InsertRow {
    table: &'static str,
    columns: Vec<&'static str>,
    /// Rows finished by [`InsertRow::next_row`]; the values of the row being written follow.
    done_rows: usize,
    /// Values of the row being written.
    in_row: usize,
    args: PgArguments,
    error: Option<sqlx::error::BoxDynError>,
}

impl InsertRow {
    pub fn new(table: &'static str) -> Self {
        Self {
            table,
            columns: Vec::new(),
            done_rows: 0,
            in_row: 0,
            args: PgArguments::default(),
            error: None,
        }
    }

    /// The column and its value (bound as the next parameter). The rows after the first name
    /// the first row's columns in the same order.
    pub fn value<'q, T>(mut self, column: &'static str, value: T) -> Self
    where
        T: sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>,
    {
        if self.done_rows == 0 {
            self.columns.push(column);
        } else if self.columns.get(self.in_row) != Some(&column) && self.error.is_none() {
            self.error =
                Some(format!("row {}: column `{column}` out of order", self.done_rows + 1).into());
        }
        self.in_row += 1;
        if let Err(e) = self.args.add(value)
            && self.error.is_none()
        {
            self.error = Some(e);
        }
        self
    }

    /// Ends the row being written: the next values make another row of the same statement
    /// (`VALUES (...), (...)`).
    pub fn next_row(mut self) -> Self {
        if self.in_row != self.columns.len() && self.error.is_none() {
            self.error = Some(format!("row {} is incomplete", self.done_rows + 1).into());
        }
        self.done_rows += 1;
        self.in_row = 0;
        self
    }

    /// `INSERT INTO <table> (<columns>) VALUES ($1, ...), ... <suffix>`.
    pub fn sql(&self, suffix: &str) -> String {
        let width = self.columns.len();
        let rows = self.done_rows + usize::from(self.in_row > 0 || self.done_rows == 0);
        let values: Vec<String> = (0..rows)
            .map(|r| {
                let placeholders: Vec<String> =
                    (1..=width).map(|i| format!("${}", r * width + i)).collect();
                format!("({})", placeholders.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO {} ({}) VALUES {} {suffix}",
            self.table,
            self.columns.join(", "),
            values.join(", ")
        )
    }

    /// The statement with `suffix` (e.g. `ON CONFLICT DO NOTHING`, `RETURNING id`), ready to run;
    /// an error if a value could not be encoded.
    pub fn query(self, suffix: &str) -> Result<Query<'static, Postgres, PgArguments>, sqlx::Error> {
        if let Some(e) = self.error {
            return Err(sqlx::Error::Encode(e));
        }
        if self.in_row != 0 && self.in_row != self.columns.len() {
            return Err(sqlx::Error::Encode(
                format!("row {} is incomplete", self.done_rows + 1).into(),
            ));
        }
        // Only the caller's constant table and column names are joined; values are bound.
        Ok(sqlx::query_with(AssertSqlSafe(self.sql(suffix)), self.args))
    }
}
