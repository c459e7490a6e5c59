//! A PostgreSQL database of its own for each test (created, then dropped),
//! on the server `HWKEY_TEST_POSTGRES_URL` names: tests never see each
//! other's rows, nor those of earlier runs.
#![allow(dead_code)]

use sqlx::Connection;

/// `HWKEY_TEST_POSTGRES_URL`, or `None` with a message saying how to run.
pub fn admin_url() -> Option<String> {
    match std::env::var("HWKEY_TEST_POSTGRES_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ => {
            println!("skipped: set HWKEY_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run");
            None
        }
    }
}

/// A database created for one test, dropped at the end.
pub struct TestDb {
    admin: String,
    name: String,
    /// Its URL.
    pub url: String,
}

impl TestDb {
    /// Create a database named after `tag`, the process and a random suffix.
    pub async fn create(admin: &str, tag: &str) -> TestDb {
        let rnd = hwkey::crypto::default_provider().random_bytes(4).expect("rng");
        let name = format!("hwkey_{tag}_{}_{}", std::process::id(), hex::encode(rnd));
        let mut conn = sqlx::PgConnection::connect(admin).await.expect("connect to HWKEY_TEST_POSTGRES_URL");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
        conn.close().await.ok();
        // Replace the database name (the path) in the URL.
        let (base, query) = match admin.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (admin, String::new()),
        };
        let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
        let host_part = match base[scheme_end..].find('/') {
            Some(i) => &base[..scheme_end + i],
            None => base,
        };
        TestDb { admin: admin.to_owned(), url: format!("{host_part}/{name}{query}"), name }
    }

    /// Drop it (closing its connections).
    pub async fn drop_db(self) {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin).await {
            let _ =
                sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&mut conn).await;
            conn.close().await.ok();
        }
    }
}
