use std::fmt;
use std::thread;

use tokio_postgres::NoTls;

/// Where the test PostgreSQL server is; `PORTCULLIS_TEST_POSTGRES_URL` overrides.
const DEFAULT_ADMIN_URL: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

/// A fresh PostgreSQL database for one test, dropped (with its connections) when this value is.
pub struct TestPostgres {
    admin_url: String,
    name: String,
    /// Connection string of the fresh database.
    pub url: String,
}

impl TestPostgres {
    /// Creates a database with a unique name, so parallel tests and runs never collide.
    ///
    /// # Panics
    /// When PostgreSQL is not reachable: a PostgreSQL test never skips silently.
    pub async fn create() -> Self {
        let admin_url = std::env::var("PORTCULLIS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let name = format!("portcullis_test_{}", uuid::Uuid::new_v4().simple());
        let client = connect(&admin_url).await;
        if let Err(e) = client.batch_execute(&format!("CREATE DATABASE {name}")).await {
            panic!("cannot create test database {name}: {e}");
        }
        let url = format!("{admin_url} dbname={name}");
        Self { admin_url, name, url }
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = match tokio_postgres::connect(url, NoTls).await {
        Ok(pair) => pair,
        Err(e) => panic!(
            "PostgreSQL is not reachable at `{url}` ({e}). The test command starts it; otherwise run \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`."
        ),
    };
    tokio::spawn(connection);
    client
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime, which must not block: use a thread with its own runtime.
        let dropped = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let client = connect(&admin_url).await;
                client.batch_execute(&statement).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

impl fmt::Debug for TestPostgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPostgres").field("name", &self.name).finish_non_exhaustive()
    }
}
