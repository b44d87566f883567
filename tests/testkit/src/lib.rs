//! The test harness every integration test uses: the real PostgreSQL and NATS of the local stack
//! (`make test` starts them; `DATABASE_URL`/`NATS_URL` or `var/stack.env` say where), a fresh
//! database per test, and a NATS namespace per test so parallel tests never see each other's streams.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use sqlx::Connection;

#[derive(Debug, Clone)]
pub struct TestEnv {
    /// A superuser URL of the server (used to create databases).
    pub admin_url: String,
    pub nats_url: String,
}

fn find_env_file(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join("var/stack.env"))
        .find(|p| p.is_file())
}

impl TestEnv {
    /// Reads `DATABASE_URL` and `NATS_URL` from the environment, else from `var/stack.env`.
    pub fn load() -> Self {
        rz_telemetry::init_for_tests();
        let mut admin_url = std::env::var("DATABASE_URL").ok();
        let mut nats_url = std::env::var("NATS_URL").ok();
        if (admin_url.is_none() || nats_url.is_none())
            && let Some(file) = find_env_file(Path::new(env!("CARGO_MANIFEST_DIR")))
        {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for line in text.lines() {
                if let Some((k, v)) = line.split_once('=') {
                    match k.trim() {
                        "DATABASE_URL" if admin_url.is_none() => {
                            admin_url = Some(v.trim().to_owned())
                        }
                        "NATS_URL" if nats_url.is_none() => nats_url = Some(v.trim().to_owned()),
                        _ => {}
                    }
                }
            }
        }
        let hint = "run the tests with `make test` (it starts PostgreSQL and NATS), or set DATABASE_URL and NATS_URL";
        Self {
            admin_url: admin_url.unwrap_or_else(|| panic!("no DATABASE_URL: {hint}")),
            nats_url: nats_url.unwrap_or_else(|| panic!("no NATS_URL: {hint}")),
        }
    }

    /// Creates an empty database for one test and returns its URL.
    pub async fn fresh_database(&self) -> String {
        let name = format!("rzt_{}", uuid::Uuid::now_v7().simple());
        let mut conn = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .expect("cannot connect to the test PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("cannot create a test database");
        with_database(&self.admin_url, &name)
    }

    /// A NATS namespace of its own (lowercase letters and digits).
    pub fn namespace(&self) -> String {
        format!("t{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
    }
}

/// The URL with its database name replaced.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = match base.rfind('/') {
        Some(i)
            if base[..i].contains("://") && i > base.find("://").map(|j| j + 2).unwrap_or(0) =>
        {
            &base[..i]
        }
        _ => base,
    };
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            super::with_database("postgres://u@h:1/postgres", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(
            super::with_database("postgres://u@h:1/postgres?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://u@h:1", "x"),
            "postgres://u@h:1/x"
        );
    }
}
