//! The one conformance suite every storage backend runs unchanged, and helpers for test databases.
//!
//! A backend's test file calls [`conformance_suite!`] with an async expression that yields a fresh,
//! unmigrated [`Fixture`]; each case becomes its own `#[tokio::test]`.

mod abuse_cases;
mod app_user_cases;
mod cases;
mod connector_cases;
mod event_cases;
mod login_cases;
mod passkey_cases;
mod postgres_database;
mod session_cases;

use std::any::Any;
use std::sync::Arc;

use portcullis_core::store::Store;

pub use abuse_cases::*;
pub use app_user_cases::*;
pub use cases::*;
pub use connector_cases::*;
pub use event_cases::*;
pub use login_cases::*;
pub use passkey_cases::*;
pub use postgres_database::TestPostgres;
pub use session_cases::*;

/// A store under test and whatever keeps its backing storage alive (a temp dir, a test database).
#[derive(Debug)]
pub struct Fixture {
    /// The store, not migrated yet.
    pub store: Arc<dyn Store>,
    /// Dropped after the test: removes the storage.
    pub guard: Box<dyn Any + Send>,
}

/// Expands to one `#[tokio::test]` per conformance case. `$fixture` is an async expression yielding a
/// fresh [`Fixture`].
#[macro_export]
macro_rules! conformance_suite {
    ($fixture:expr) => {
        $crate::conformance_suite!(@cases $fixture;
            migrations_are_idempotent_and_concurrent_safe,
            organizations_round_trip,
            unknown_organization_is_none,
            duplicate_organization_id_conflicts_and_keeps_the_first,
            concurrent_writers_all_land,
            concurrent_inserts_of_one_id_have_one_winner,
            signing_keys_round_trip_byte_for_byte,
            key_insert_with_a_stale_precondition_writes_nothing,
            concurrent_rotations_add_exactly_one_key,
            organization_key_rings_are_separate,
            a_family_s_first_key_is_no_rotation,
            stored_key_ring_opens_and_signs,
            sessions_round_trip,
            concurrent_refreshes_rotate_once_and_never_look_like_theft,
            reuse_after_grace_revokes_the_family,
            foreign_organization_refresh_changes_nothing,
            revocation_feed_and_payload_updates,
            api_keys_round_trip,
            organization_config_and_secrets,
            users_are_unique_per_email_under_concurrency,
            attempts_count_and_close_once,
            attempts_approve_once_and_undo_wins,
            codes_are_single_use_under_concurrency,
            live_login_sessions_of_a_user,
            outbox_lists_newest_first,
            connector_accounts_round_trip,
            connector_credential_swaps_have_one_winner,
            connector_leases_are_exclusive_until_expiry,
            connector_rate_strikes_and_blocks_are_shared,
            connector_send_slots_queue_across_callers,
            rate_limit_hits_count_atomically,
            audit_events_round_trip,
            captcha_solutions_are_spent_once,
            code_failures_count_per_account_and_reset,
            connector_storage_round_trip_and_caps,
            connector_storage_increments_all_count,
            passkeys_are_unique_and_owned,
            passkey_counters_advance_by_compare_and_swap,
            passkey_ceremonies_are_taken_once,
            app_roles_and_user_roles_round_trip,
            app_user_metadata_merges_and_concurrent_updates_all_land,
            event_endpoints_round_trip,
            deliveries_keep_endpoint_order_and_dispatch_once,
        );
    };
    (@cases $fixture:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture: $crate::Fixture = $fixture.await;
                $crate::migrate(&fixture.store).await;
                $crate::$case(&fixture.store).await;
                drop(fixture);
            }
        )*
    };
}
