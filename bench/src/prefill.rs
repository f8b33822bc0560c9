//! Fills a data directory's SQLite store with a large population before `portcullis serve` starts on it
//! (the scale pairs of `scripts/bench.sh`): sessions (rows as the session layer stores them, with hashes
//! that no token matches) and users, in an organization of their own. The server's own organization, keys
//! and secrets are made afterwards by the CLI and the server, as on any first start.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::login::model::User;
use portcullis_core::organization::Organization;
use portcullis_core::session::SessionRecord;
use portcullis_core::store::Store;
use portcullis_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use serde_json::Map;

#[derive(Debug, clap::Args)]
pub(crate) struct PrefillArgs {
    /// The server's data directory (its `portcullis.db` is created or extended).
    #[arg(long)]
    data_dir: PathBuf,
    /// Sessions to add.
    #[arg(long, default_value_t = 0)]
    sessions: usize,
    /// Users to add.
    #[arg(long, default_value_t = 0)]
    users: usize,
}

pub(crate) async fn run(args: &PrefillArgs) -> Result<(), String> {
    std::fs::create_dir_all(&args.data_dir).map_err(|e| e.to_string())?;
    let options =
        SqliteOptions { path: args.data_dir.join("portcullis.db"), readers: 1, synchronous: Synchronous::Normal };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&options).map_err(|e| e.to_string())?);
    store.migrate().await.map_err(|e| e.to_string())?;
    let began = Instant::now();
    let now = SystemClock.now();
    let org = Organization::new("prefill", now).map_err(|e| e.message().to_owned())?;
    store.insert_organization(&org).await.map_err(|e| e.to_string())?;
    for i in 0..args.sessions {
        let session = SessionRecord {
            handle: format!("prefill-{i:08}"),
            organization_id: org.id.clone(),
            user_id: format!("prefill-user-{}", i % 100_000),
            tenant_id: "public".to_owned(),
            payload: Map::new(),
            current_hashes: vec![format!("{i:064x}")],
            previous_hash: None,
            rotated_at: None,
            created_at: now,
            expires_at: now.plus(Duration::from_secs(8_640_000)),
            revoked_at: None,
            data: Map::new(),
        };
        store.insert_session(&session).await.map_err(|e| e.to_string())?;
    }
    for i in 0..args.users {
        let user = User {
            id: format!("prefill-user-{i}"),
            organization_id: org.id.clone(),
            email: format!("prefill{i}@example.com"),
            verified: true,
            blocked: false,
            created: now,
            updated: now,
            last_login: Some(now),
        };
        store.user_by_email(&org.id, &user.email, Some(&user)).await.map_err(|e| e.to_string())?;
    }
    eprintln!("prefill: {} sessions and {} users in {:.0} s", args.sessions, args.users, began.elapsed().as_secs_f64());
    Ok(())
}
