//! The WebAuthn ceremonies, on `webauthn_rp`: options for the browser, and the checks of its answer
//! (challenge, origin, relying-party id, user presence and verification, signature, sign counter). No
//! storage here: the caller keeps the encoded server state in a ceremony record.

use std::num::NonZeroU32;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use webauthn_rp::bin::{Decode, Encode};
use webauthn_rp::request::auth::{AllowedCredentials, AuthenticationVerificationOptions};
use webauthn_rp::request::register::{
    CredProtect, Nickname, PublicKeyCredentialUserEntity, RegistrationVerificationOptions, UserHandle16, Username,
};
use webauthn_rp::request::{
    AsciiDomain, Credentials as _, ExtensionInfo, PublicKeyCredentialDescriptor, RpId, TimedCeremony as _,
    UserVerificationRequirement,
};
use webauthn_rp::response::auth::error::AuthCeremonyErr;
use webauthn_rp::response::register::error::RegCeremonyErr;
use webauthn_rp::response::register::{CompressedPubKey, DynamicState, StaticState};
use webauthn_rp::response::{AuthTransports, Backup, CredentialId};
use webauthn_rp::{
    AuthenticatedCredential, DiscoverableAuthentication16, DiscoverableAuthenticationServerState,
    DiscoverableCredentialRequestOptions, NonDiscoverableAuthentication16, NonDiscoverableAuthenticationServerState,
    NonDiscoverableCredentialRequestOptions, PublicKeyCredentialCreationOptions, Registration, RegistrationServerState,
};

use super::model::{CeremonyKind, Passkey};
use crate::{Error, ErrorCode};

/// How long a ceremony may take (the catalog's `passkeyDataExpired` says 5 minutes).
pub const CEREMONY_LIFETIME: Duration = Duration::from_secs(300);

/// The relying party of one organization: its id (a domain) and the one origin its pages are served on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    /// Relying-party id: the organization's auth domain, or the server's host.
    pub id: String,
    /// The origin (`https://login.example.com`, or `http://localhost:8080` in development).
    pub origin: String,
}

type StoredStaticState = StaticState<CompressedPubKey<[u8; 32], [u8; 32], [u8; 48], Vec<u8>>>;

/// A credential to name in `allowCredentials` or `excludeCredentials`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRef {
    /// Credential id, base64url.
    pub credential_id: String,
    /// Transports, comma-separated.
    pub transports: String,
}

impl From<&Passkey> for CredentialRef {
    fn from(passkey: &Passkey) -> Self {
        Self { credential_id: passkey.credential_id.clone(), transports: passkey.transports.clone() }
    }
}

/// A ceremony started: the state to keep and the options for the browser.
#[derive(Debug, Clone)]
pub struct Started {
    /// The challenge, as the key of the ceremony record (the browser's answer carries it back).
    pub challenge: String,
    /// Encoded server state.
    pub state: Vec<u8>,
    /// `PublicKeyCredentialCreationOptionsJSON` or `…RequestOptionsJSON`.
    pub options: serde_json::Value,
}

/// A credential that passed the registration checks.
#[derive(Debug, Clone)]
pub struct NewCredential {
    /// Credential id, base64url.
    pub credential_id: String,
    /// Encoded static state (public key).
    pub static_state: Vec<u8>,
    /// Encoded dynamic state.
    pub dynamic_state: Vec<u8>,
    /// Sign counter.
    pub sign_count: u32,
    /// BE.
    pub backup_eligible: bool,
    /// BS.
    pub backed_up: bool,
    /// AAGUID, hex; `None` when all zero.
    pub aaguid: Option<String>,
    /// Transports, comma-separated.
    pub transports: String,
}

/// The parts of a login answer needed before its checks: which credential, and the ceremony's key.
#[derive(Debug, Clone)]
pub struct Assertion {
    body: String,
    /// Credential id, base64url.
    pub credential_id: String,
    /// The challenge it answers (the ceremony's key).
    pub challenge: String,
}

/// A login answer that passed every check: the credential's counters after it.
#[derive(Debug, Clone)]
pub struct Verified {
    /// New dynamic state.
    pub dynamic_state: Vec<u8>,
    /// New sign counter.
    pub sign_count: u32,
    /// BS now.
    pub backed_up: bool,
}

/// Why a login answer failed its checks.
#[derive(Debug)]
pub enum LoginRejection {
    /// The signature counter did not advance: the authenticator may have been cloned.
    CounterRegressed(Error),
    /// Any other failure, mapped to the catalog.
    Failed(Error),
}

fn invalid(detail: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::PasskeyDataInvalid).with_internal(detail)
}

fn challenge_key(challenge: u128) -> String {
    format!("{challenge:032x}")
}

fn timeout() -> NonZeroU32 {
    NonZeroU32::new(u32::try_from(CEREMONY_LIFETIME.as_millis()).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
}

/// The 16-byte user handle of a user: the bytes of the user's UUID (no personal data).
fn user_handle(user_id: &str) -> Result<UserHandle16, Error> {
    let uuid = uuid::Uuid::parse_str(user_id)
        .map_err(|e| Error::new(ErrorCode::GenericError).with_internal(format!("user id {user_id}: {e}")))?;
    UserHandle16::decode(uuid.into_bytes())
        .map_err(|e| Error::new(ErrorCode::GenericError).with_internal(format!("user handle: {e:?}")))
}

/// The user id a user handle names.
#[must_use]
pub fn user_id_of_handle(handle: &[u8]) -> Option<String> {
    uuid::Uuid::from_slice(handle).ok().map(|u| u.to_string())
}

fn descriptor(passkey: &CredentialRef) -> Result<PublicKeyCredentialDescriptor<Vec<u8>>, Error> {
    let id = URL_SAFE_NO_PAD.decode(&passkey.credential_id).map_err(invalid)?;
    Ok(PublicKeyCredentialDescriptor {
        id: CredentialId::<Vec<u8>>::decode(id).map_err(|e| invalid(format!("{e:?}")))?,
        transports: transports_from_names(&passkey.transports)?,
    })
}

/// Transport names (WebAuthn's `AuthenticatorTransport`) and their bits in `webauthn_rp`'s encoding.
const TRANSPORT_BITS: [(&str, u8); 6] =
    [("ble", 0x1), ("hybrid", 0x2), ("internal", 0x4), ("nfc", 0x8), ("smart-card", 0x10), ("usb", 0x20)];

fn transports_from_names(names: &str) -> Result<AuthTransports, Error> {
    let bits = names
        .split(',')
        .filter_map(|name| TRANSPORT_BITS.iter().find(|(n, _)| *n == name))
        .fold(0, |bits, (_, bit)| bits | bit);
    AuthTransports::decode(bits).map_err(|e| invalid(format!("{e:?}")))
}

fn transport_names(transports: AuthTransports) -> String {
    let Ok(bits) = transports.encode();
    TRANSPORT_BITS.iter().filter(|(_, bit)| bits & bit != 0).map(|(n, _)| *n).collect::<Vec<_>>().join(",")
}

fn backup_flags(backup: Backup) -> (bool, bool) {
    match backup {
        Backup::NotEligible => (false, false),
        Backup::Eligible => (true, false),
        Backup::Exists => (true, true),
    }
}

impl RelyingParty {
    fn rp_id(&self) -> Result<RpId, Error> {
        AsciiDomain::try_from(self.id.clone()).map(RpId::Domain).map_err(|e| {
            Error::new(ErrorCode::GenericError).with_internal(format!("relying-party id {}: {e:?}", self.id))
        })
    }

    fn origins(&self) -> [String; 1] {
        [self.origin.clone()]
    }

    /// Starts adding a passkey for a user; the user's passkeys are excluded (one per authenticator).
    ///
    /// # Errors
    /// `genericError` if the options cannot be made (a bad relying-party id or user id).
    pub fn start_registration(&self, user_id: &str, email: &str, existing: &[CredentialRef]) -> Result<Started, Error> {
        let rp_id = self.rp_id()?;
        let handle = user_handle(user_id)?;
        let fail = |e: &dyn std::fmt::Debug| Error::new(ErrorCode::GenericError).with_internal(format!("{e:?}"));
        let user = PublicKeyCredentialUserEntity {
            name: Username::try_from(email).map_err(|e| fail(&e))?,
            id: &handle,
            display_name: Nickname::try_from(email).ok(),
        };
        let exclude = existing.iter().map(descriptor).collect::<Result<Vec<_>, _>>()?;
        let mut options = PublicKeyCredentialCreationOptions::passkey(&rp_id, user, exclude);
        options.timeout = timeout();
        // Ask for credProtect "user verification required" without making it a condition: browsers refuse
        // the whole registration when an enforced policy is unsupported (Chromium's authenticators), and
        // every login requires user verification anyway.
        options.extensions.cred_protect = CredProtect::UserVerificationRequired(ExtensionInfo::AllowDontEnforceValue);
        let (server, client) = options.start_ceremony().map_err(|e| fail(&e))?;
        let challenge = challenge_key(server.sent_challenge().0);
        let state = server.encode().map_err(|e| fail(&e))?;
        let options = serde_json::to_value(&client).map_err(|e| fail(&e))?;
        Ok(Started { challenge, state, options })
    }

    /// The challenge a registration answer carries.
    ///
    /// # Errors
    /// `passkeyDataInvalid` if the answer cannot be read.
    pub fn registration_challenge(response: &str) -> Result<String, Error> {
        let registration = Registration::from_json_relaxed(response.as_bytes()).map_err(invalid)?;
        Ok(challenge_key(registration.challenge_relaxed().map_err(invalid)?.0))
    }

    /// Checks a registration answer against its ceremony's state.
    ///
    /// # Errors
    /// `passkeyDataExpired` past the ceremony's lifetime; `passkeyDataInvalid` for any failed check.
    pub fn finish_registration(&self, state: &[u8], response: &str) -> Result<NewCredential, Error> {
        let rp_id = self.rp_id()?;
        let registration = Registration::from_json_relaxed(response.as_bytes()).map_err(invalid)?;
        let server = RegistrationServerState::<16>::decode(state).map_err(|e| invalid(format!("{e:?}")))?;
        let origins = self.origins();
        let options =
            RegistrationVerificationOptions::<String, String> { allowed_origins: &origins, ..Default::default() };
        let credential = server.verify(&rp_id, &registration, &options).map_err(|e| match e {
            RegCeremonyErr::Timeout => Error::new(ErrorCode::PasskeyDataExpired).with_internal(e),
            other => invalid(other),
        })?;
        let (id, transports, _user, static_state, dynamic_state, metadata) = credential.into_parts();
        let Ok(id) = id.encode();
        let Ok(static_bytes) = static_state.encode();
        let Ok(dynamic_bytes) = dynamic_state.encode();
        let (backup_eligible, backed_up) = backup_flags(dynamic_state.backup);
        let aaguid = metadata.aaguid.data();
        Ok(NewCredential {
            credential_id: URL_SAFE_NO_PAD.encode(id),
            static_state: static_bytes,
            dynamic_state: dynamic_bytes.to_vec(),
            sign_count: dynamic_state.sign_count,
            backup_eligible,
            backed_up,
            aaguid: aaguid.iter().any(|b| *b != 0).then(|| hex::encode(aaguid)),
            transports: transport_names(transports),
        })
    }

    /// Starts a login: username first when `allowed` holds the account's credential ids (or decoys for an
    /// unknown email), discoverable (autofill) when it is `None`.
    ///
    /// # Errors
    /// `genericError` if the options cannot be made.
    pub fn start_login(&self, allowed: Option<&[CredentialRef]>) -> Result<Started, Error> {
        let rp_id = self.rp_id()?;
        let fail = |e: &dyn std::fmt::Debug| Error::new(ErrorCode::GenericError).with_internal(format!("{e:?}"));
        let (challenge, state, options) = match allowed {
            None => {
                let mut options = DiscoverableCredentialRequestOptions::passkey(&rp_id);
                options.0.timeout = timeout();
                let (server, client) = options.start_ceremony().map_err(|e| fail(&e))?;
                let challenge = server.sent_challenge().0;
                let state = server.encode().map_err(|e| fail(&e))?;
                (challenge, state, serde_json::to_value(&client).map_err(|e| fail(&e))?)
            }
            Some(passkeys) => {
                let mut credentials = AllowedCredentials::with_capacity(passkeys.len());
                for passkey in passkeys {
                    credentials.push(descriptor(passkey)?.into());
                }
                let mut options = NonDiscoverableCredentialRequestOptions::second_factor(&rp_id, credentials)
                    .map_err(|e| fail(&e))?;
                options.options().user_verification = UserVerificationRequirement::Required;
                options.options().timeout = timeout();
                let (server, client) = options.start_ceremony().map_err(|e| fail(&e))?;
                let challenge = server.sent_challenge().0;
                let state = server.encode().map_err(|e| fail(&e))?;
                (challenge, state, serde_json::to_value(&client).map_err(|e| fail(&e))?)
            }
        };
        Ok(Started { challenge: challenge_key(challenge), state, options })
    }

    /// Reads a login answer: which credential, which challenge.
    ///
    /// # Errors
    /// `passkeyDataInvalid` if the answer cannot be read.
    pub fn read_assertion(response: &str) -> Result<Assertion, Error> {
        let parsed = NonDiscoverableAuthentication16::from_json_relaxed(response.as_bytes()).map_err(invalid)?;
        Ok(Assertion {
            body: response.to_owned(),
            credential_id: URL_SAFE_NO_PAD.encode(parsed.raw_id().as_ref()),
            challenge: challenge_key(parsed.challenge_relaxed().map_err(invalid)?.0),
        })
    }

    /// Checks a login answer against its ceremony's state and the stored passkey.
    ///
    /// # Errors
    /// [`LoginRejection::CounterRegressed`] when the counter did not advance; otherwise
    /// `passkeyDataExpired` or `passkeyDataInvalid`.
    pub fn finish_login(
        &self,
        kind: CeremonyKind,
        state: &[u8],
        assertion: &Assertion,
        passkey: &Passkey,
    ) -> Result<Verified, LoginRejection> {
        let failed = LoginRejection::Failed;
        let rp_id = self.rp_id().map_err(failed)?;
        let handle = user_handle(&passkey.user_id).map_err(failed)?;
        let id = URL_SAFE_NO_PAD.decode(&passkey.credential_id).map_err(|e| failed(invalid(e)))?;
        let dynamic: [u8; 7] =
            passkey.dynamic_state.as_slice().try_into().map_err(|_| failed(invalid("dynamic state length")))?;
        let mut credential = AuthenticatedCredential::new(
            CredentialId::<&[u8]>::decode(id.as_slice()).map_err(|e| failed(invalid(format!("{e:?}"))))?,
            &handle,
            StoredStaticState::decode(passkey.static_state.as_slice())
                .map_err(|e| failed(invalid(format!("{e:?}"))))?,
            DynamicState::decode(dynamic).map_err(|e| failed(invalid(format!("{e:?}"))))?,
        )
        .map_err(|e| failed(invalid(format!("{e:?}"))))?;
        let origins = self.origins();
        let options =
            AuthenticationVerificationOptions::<String, String> { allowed_origins: &origins, ..Default::default() };
        let body = assertion.body.as_bytes();
        let outcome = match kind {
            CeremonyKind::Discoverable => {
                let response = DiscoverableAuthentication16::from_json_relaxed(body).map_err(|e| failed(invalid(e)))?;
                DiscoverableAuthenticationServerState::decode(state)
                    .map_err(|e| failed(invalid(format!("{e:?}"))))?
                    .verify(&rp_id, &response, &mut credential, &options)
            }
            CeremonyKind::Authentication => {
                let response =
                    NonDiscoverableAuthentication16::from_json_relaxed(body).map_err(|e| failed(invalid(e)))?;
                NonDiscoverableAuthenticationServerState::decode(state)
                    .map_err(|e| failed(invalid(format!("{e:?}"))))?
                    .verify(&rp_id, &response, &mut credential, &options)
            }
            CeremonyKind::Registration => return Err(failed(invalid("a registration ceremony answered by a login"))),
        };
        match outcome {
            Ok(_) => {
                let dynamic_state = credential.dynamic_state();
                let Ok(bytes) = dynamic_state.encode();
                Ok(Verified {
                    dynamic_state: bytes.to_vec(),
                    sign_count: dynamic_state.sign_count,
                    backed_up: backup_flags(dynamic_state.backup).1,
                })
            }
            Err(AuthCeremonyErr::SignatureCounter) => {
                Err(LoginRejection::CounterRegressed(invalid("the signature counter did not advance").with_message(
                    "This passkey could not be verified: it may have been copied. Please log in by email.",
                )))
            }
            Err(AuthCeremonyErr::Timeout) => {
                Err(failed(Error::new(ErrorCode::PasskeyDataExpired).with_internal("webauthn timeout")))
            }
            Err(other) => Err(failed(invalid(other))),
        }
    }
}
