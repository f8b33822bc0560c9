//! Passkey logins in process on SQLite: the server's side of a complete passkey login (discoverable
//! options, the WebAuthn checks of the answer, the counter's compare-and-swap, session, callback code,
//! token exchange). The software authenticator (1Password's `passkey-client`) answers in between; its time
//! is not counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use passkey_authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use passkey_client::{Client, DefaultClientData};
use passkey_crypto::rust_crypto::RustCryptoBackend;
use passkey_types::Passkey;
use passkey_types::ctap2::{Aaguid, Ctap2Error};
use passkey_types::webauthn::{CredentialCreationOptions, CredentialRequestOptions};
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::keys::MasterKey;
use portcullis_core::login::{EmailStep, LoginOutcome, LoginService};
use portcullis_core::organization::Organization;
use portcullis_core::store::Store;
use portcullis_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use url::Url;

use crate::login::{VERIFIER, code_in, exchange, pkce_challenge, start_flow};
use crate::report::{Figure, Report};

const ISSUER: &str = "https://auth.example.com";

/// The authenticator's person: present and verified.
struct Person;

#[async_trait::async_trait]
impl UserValidationMethod for Person {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        _: UiHint<'a, Passkey>,
        _: bool,
        verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck { presence: true, verification })
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }
}

type Device = Client<Option<Passkey>, Person, RustCryptoBackend, public_suffix::PublicSuffixList, ()>;

fn code_of(outcome: LoginOutcome) -> String {
    let LoginOutcome::Redirect(callback) = outcome else { panic!("a login ends at the callback") };
    callback.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).expect("authorization code")
}

pub(crate) async fn run(report: &mut Report, window: Duration, runs: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = SqliteOptions { path: dir.path().join("passkey.db"), readers: 2, synchronous: Synchronous::Normal };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&options).expect("open"));
    store.migrate().await.expect("migrate");
    let master = Arc::new(MasterKey::generate().expect("master key").0);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let login = LoginService::new(Arc::clone(&store), clock, master, ISSUER.to_owned());
    let mut org = Organization::new("bench", SystemClock.now()).expect("organization");
    org.set_whitelist(vec!["https://app.example.com".to_owned()]).expect("whitelist");
    org.settings.passkey_connection_enabled = true;
    store.insert_organization(&org).await.expect("organization");
    let (secret, _) = login.new_secret(&org.id).await.expect("secret");
    let challenge = pkce_challenge(VERIFIER);
    let origin = Url::parse(ISSUER).expect("origin");
    let mut device: Device =
        Client::new(Authenticator::new(Aaguid::from(*b"portcullis-bench"), None, Person, RustCryptoBackend));

    // One registration: an email code, then the passkey step.
    let started = start_flow(&login, &org.id, &challenge).await;
    let binding = Some(started.binding.as_str());
    let sent =
        login.send_code(&started.flow.id, binding, "ada@example.com", &EmailStep::default()).await.expect("send");
    let code = code_in(&sent.message.body);
    login.enter_code(&started.flow.id, binding, &code).await.expect("code accepted");
    let options = login.passkey_registration_options(&started.flow.id, binding).await.expect("options");
    let public_key = serde_json::from_value(options).expect("creation options");
    let created = device
        .register(origin.clone(), CredentialCreationOptions { public_key }, DefaultClientData)
        .await
        .expect("create");
    let answer = serde_json::to_string(&created).expect("json");
    login.register_passkey(&started.flow.id, binding, &answer, Some("bench")).await.expect("registered");

    let mut rates = Vec::new();
    for _ in 0..runs {
        let (mut count, mut server_time) = (0u64, Duration::ZERO);
        let start_of_run = Instant::now();
        while start_of_run.elapsed() < window {
            let server = Instant::now();
            let started = start_flow(&login, &org.id, &challenge).await;
            let binding = Some(started.binding.as_str());
            let options = login.passkey_login_options(&started.flow.id, binding, None).await.expect("options");
            server_time += server.elapsed();
            let public_key = serde_json::from_value(options).expect("request options");
            let credential = device
                .authenticate(origin.clone(), CredentialRequestOptions { public_key }, DefaultClientData)
                .await
                .expect("get");
            let answer = serde_json::to_string(&credential).expect("json");
            let server = Instant::now();
            let outcome = login.passkey_login(&started.flow.id, binding, &answer).await.expect("passkey login");
            exchange(&login, &org.id, &secret, code_of(outcome)).await;
            server_time += server.elapsed();
            count += 1;
        }
        rates.push(count as f64 / server_time.as_secs_f64());
    }
    report.figure(Figure {
        id: "passkey-inprocess",
        name: "complete passkey login on SQLite, 1 client",
        what: "authorize + discoverable options + WebAuthn checks + counter + callback + token exchange (server side)",
        runs: rates,
    });
}
