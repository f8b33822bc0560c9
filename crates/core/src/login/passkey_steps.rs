//! The hosted login's passkey steps: login with a passkey (username first or discoverable), and, once a
//! login code verified the email, the passkey page where people add, rename and remove passkeys before
//! going on to the application.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use url::Url;

use super::model::{LoginAttempt, LoginFlow, LoginSession, User};
use super::service::{LoginOutcome, LoginService, normalize_email};
use crate::abuse::AuditKind;
use crate::organization::Organization;
use crate::passkey::{
    CEREMONY_LIFETIME, CeremonyKind, CredentialRef, LoginRejection, Passkey, PasskeyCeremony, PasskeyUse, RelyingParty,
};
use crate::store::StoreError;
use crate::{Error, ErrorCode};

/// Longest passkey name kept.
pub const MAX_PASSKEY_NAME_CHARS: usize = 64;

/// The passkey page of a flow whose email was verified.
#[derive(Debug, Clone)]
pub struct PasskeyPage {
    /// The organization.
    pub organization: Organization,
    /// The verified email.
    pub email: String,
    /// The user's passkeys, oldest first.
    pub passkeys: Vec<Passkey>,
}

/// A flow whose email a login code verified: its session waits for the browser to go on.
struct VerifiedStep {
    flow: LoginFlow,
    organization: Organization,
    attempt: LoginAttempt,
    session: LoginSession,
    user: User,
}

fn data_missing() -> Error {
    Error::new(ErrorCode::PasskeyDataMissing)
        .with_message("This passkey request is unknown or was used already. Please try again.")
}

fn data_invalid(message: &'static str) -> Error {
    Error::new(ErrorCode::PasskeyDataInvalid).with_message(message)
}

fn passkeys_off() -> Error {
    Error::new(ErrorCode::ConnectionMissing).with_message("Passkeys are not enabled for this organization.")
}

/// Whether a flow's page offers passkey login: the organization has passkeys on and the page is not
/// framed (a framed page's answer is cross-origin, which the checks refuse).
#[must_use]
pub fn offers_passkeys(flow: &LoginFlow, organization: &Organization) -> bool {
    organization.settings.passkey_connection_enabled && !flow.embed
}

impl LoginService {
    /// The relying party of an organization: its auth domain, or the server's host, with the origin its
    /// pages are served on.
    ///
    /// # Errors
    /// `connectionMissing` when the pages are served on an IP address (WebAuthn needs a domain name).
    pub fn relying_party(&self, organization: &Organization) -> Result<RelyingParty, Error> {
        let issuer = Url::parse(self.issuer()).map_err(|e| Error::new(ErrorCode::GenericError).with_internal(e))?;
        let port = issuer.port().map(|p| format!(":{p}")).unwrap_or_default();
        let (id, origin) = match &organization.settings.auth_domain {
            Some(domain) => (domain.clone(), format!("{}://{domain}{port}", issuer.scheme())),
            None => match issuer.host() {
                Some(url::Host::Domain(host)) => (host.to_owned(), issuer.origin().ascii_serialization()),
                _ => {
                    return Err(Error::new(ErrorCode::ConnectionMissing).with_message(
                        "Passkeys need the login pages on a domain name: set the organization's authDomain or the \
                         server's public URL to a host name.",
                    ));
                }
            },
        };
        Ok(RelyingParty { id, origin })
    }

    /// Options for a passkey login on a flow's page: username first when `email` is given, discoverable
    /// (autofill) otherwise. An email without passkeys gets the same shape of answer as one with them (a
    /// decoy credential), so the answer does not tell whether an account exists.
    ///
    /// # Errors
    /// Flow errors; `connectionMissing` when passkeys are off; `entityInvalid` for a malformed email.
    pub async fn passkey_login_options(
        &self,
        flow_id: &str,
        binding: Option<&str>,
        email: Option<&str>,
    ) -> Result<Value, Error> {
        let (flow, organization) = self.flow(flow_id, binding).await?;
        if !offers_passkeys(&flow, &organization) {
            return Err(if flow.embed && organization.settings.passkey_connection_enabled {
                Error::new(ErrorCode::ConnectionMissing)
                    .with_message("Passkeys are not available on an embedded login page. Please log in by email.")
            } else {
                passkeys_off()
            });
        }
        let relying_party = self.relying_party(&organization)?;
        let (kind, user_id, allowed) = match email.map(str::trim).filter(|e| !e.is_empty()) {
            None => (CeremonyKind::Discoverable, None, None),
            Some(raw) => {
                let email = normalize_email(raw)?;
                let user = self.store.user_by_email(&organization.id, &email, None).await?;
                // The same queries for an unknown email (no user has the empty id), so timing tells no more
                // than the answer.
                let passkeys = self.store.user_passkeys(user.as_ref().map_or("", |u| u.id.as_str())).await?;
                let allowed: Vec<CredentialRef> = if passkeys.is_empty() {
                    vec![self.decoy_credential(&organization.id, &email)]
                } else {
                    passkeys.iter().map(CredentialRef::from).collect()
                };
                (CeremonyKind::Authentication, user.map(|u| u.id), Some(allowed))
            }
        };
        let started = relying_party.start_login(allowed.as_deref())?;
        self.store
            .insert_passkey_ceremony(&PasskeyCeremony {
                id: started.challenge,
                kind,
                flow_id: flow.id,
                organization_id: organization.id,
                user_id,
                rp_id: relying_party.id,
                state: started.state,
                expires_at: self.clock.now().plus(CEREMONY_LIFETIME),
            })
            .await?;
        Ok(started.options)
    }

    /// A credential id that looks like a real one, the same for an email every time.
    fn decoy_credential(&self, organization_id: &str, email: &str) -> CredentialRef {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.passkey_decoy_key);
        let tag = hmac::sign(&key, format!("{organization_id}:{email}").as_bytes());
        CredentialRef {
            credential_id: URL_SAFE_NO_PAD.encode(&tag.as_ref()[..16]),
            transports: "hybrid,internal".to_owned(),
        }
    }

    /// Takes the ceremony a browser answer names, and checks it belongs to this flow, is of a fitting
    /// kind and is still valid.
    async fn take_ceremony(
        &self,
        flow: &LoginFlow,
        challenge: &str,
        registration: bool,
    ) -> Result<PasskeyCeremony, Error> {
        let ceremony = self.store.take_passkey_ceremony(challenge).await?.ok_or_else(data_missing)?;
        if ceremony.flow_id != flow.id || (ceremony.kind == CeremonyKind::Registration) != registration {
            return Err(data_missing().with_internal("the ceremony belongs to another flow or step"));
        }
        if ceremony.expires_at <= self.clock.now() {
            return Err(Error::new(ErrorCode::PasskeyDataExpired));
        }
        Ok(ceremony)
    }

    /// Logs in with a passkey: the browser's answer to [`passkey_login_options`](Self::passkey_login_options).
    ///
    /// # Errors
    /// Flow errors; `connectionMissing` when passkeys are off; `passkeyDataMissing` (unknown or used
    /// ceremony), `passkeyDataExpired` (after 5 minutes), `passkeyDataInvalid` (a failed check, an unknown
    /// credential, a counter that did not advance), `passkeyWrongOrganization` (a passkey of another
    /// organization).
    pub async fn passkey_login(
        &self,
        flow_id: &str,
        binding: Option<&str>,
        response: &str,
    ) -> Result<LoginOutcome, Error> {
        let (flow, organization) = self.flow(flow_id, binding).await?;
        if !organization.settings.passkey_connection_enabled {
            return Err(passkeys_off());
        }
        let assertion = RelyingParty::read_assertion(response)?;
        let ceremony = self.take_ceremony(&flow, &assertion.challenge, false).await?;
        let passkey = self.store.passkey(&assertion.credential_id).await?.ok_or_else(|| {
            data_invalid("This passkey is not registered. Please log in by email, then add it again.")
        })?;
        if passkey.organization_id != organization.id {
            let detail = json!({ "credentialId": passkey.credential_id, "flow": flow.id });
            self.audit.record(&organization.id, AuditKind::PasskeyWrongOrganization, None, detail).await;
            return Err(Error::new(ErrorCode::PasskeyWrongOrganization).with_message(format!(
                "This passkey was made for another organization's login, not for {}. Choose a passkey made for {}, \
                 or log in by email.",
                organization.name, organization.name
            )));
        }
        if ceremony.user_id.as_ref().is_some_and(|user| *user != passkey.user_id) {
            return Err(data_invalid("This passkey does not belong to the email you entered."));
        }
        let relying_party = self.relying_party(&organization)?;
        if passkey.rp_id != relying_party.id || ceremony.rp_id != relying_party.id {
            return Err(data_invalid(
                "This passkey was made for another address of this login. Please log in by email.",
            ));
        }
        let verified = match relying_party.finish_login(ceremony.kind, &ceremony.state, &assertion, &passkey) {
            Ok(verified) => verified,
            Err(LoginRejection::CounterRegressed(error)) => {
                let detail = json!({ "credentialId": passkey.credential_id, "storedCount": passkey.sign_count });
                self.audit
                    .record(&organization.id, AuditKind::PasskeyCounterRegressed, Some(&passkey.user_id), detail)
                    .await;
                return Err(error);
            }
            Err(LoginRejection::Failed(error)) => {
                let detail = json!({ "credentialId": passkey.credential_id, "reason": error.code().as_str() });
                self.audit.record(&organization.id, AuditKind::LoginFailed, Some(&passkey.user_id), detail).await;
                return Err(error);
            }
        };
        let now = self.clock.now();
        let used = PasskeyUse {
            credential_id: passkey.credential_id.clone(),
            previous_sign_count: passkey.sign_count,
            sign_count: verified.sign_count,
            backed_up: verified.backed_up,
            dynamic_state: verified.dynamic_state,
            used_at: now,
        };
        if !self.store.record_passkey_use(&used).await? {
            return Err(data_invalid("This passkey was just used for another login. Please try again."));
        }
        let user = self.store.user(&passkey.user_id).await?.ok_or_else(|| data_invalid("This account is gone."))?;
        let session = self.open_session(&flow, &organization, &user, true).await?;
        self.forget_code_failures(&organization.id, &user.email).await?;
        let detail = json!({
            "method": "passkey", "credentialId": passkey.credential_id, "sessionId": session.id,
            "userId": user.id, "face": flow.face.as_str(),
        });
        self.audit.record(&organization.id, AuditKind::LoginSucceeded, Some(&user.email), detail).await;
        self.redirect_with_code(&flow, &session).await
    }

    /// The flow's verified step: the latest attempt's session, not handed over, undone or ended, within
    /// the attempt's lifetime.
    async fn verified_step(&self, flow_id: &str, binding: Option<&str>) -> Result<VerifiedStep, Error> {
        let (flow, organization) = self.flow(flow_id, binding).await?;
        let not_verified = || {
            Error::new(ErrorCode::LoginAttemptMissing)
                .with_message("Please log in with the code we email you first; then you can add a passkey.")
        };
        let attempt = self.store.latest_attempt(&flow.id).await?.ok_or_else(not_verified)?;
        let now = self.clock.now();
        if attempt.undone_at.is_some() || attempt.handed_over_at.is_some() {
            return Err(Error::new(ErrorCode::LoginAttemptInvalid)
                .with_message("This login is finished. Please start again from the application."));
        }
        if attempt.created_at.plus(super::attempt::ATTEMPT_LIFETIME) <= now {
            return Err(Error::new(ErrorCode::LoginAttemptExpired));
        }
        let session_id = attempt.session_id.clone().ok_or_else(not_verified)?;
        let session = self.store.login_session(&session_id).await?.ok_or_else(not_verified)?;
        if session.ended_at.is_some() {
            return Err(Error::new(ErrorCode::SessionInactive));
        }
        let user = self.store.user(&session.user_id).await?.ok_or_else(not_verified)?;
        Ok(VerifiedStep { flow, organization, attempt, session, user })
    }

    /// The passkey page of a verified flow.
    ///
    /// # Errors
    /// Flow errors; `loginAttemptMissing` before the email was verified; `loginAttemptInvalid` once the
    /// browser went on; `loginAttemptExpired` after 15 minutes.
    pub async fn passkey_page(&self, flow_id: &str, binding: Option<&str>) -> Result<PasskeyPage, Error> {
        let step = self.verified_step(flow_id, binding).await?;
        let passkeys = self.store.user_passkeys(&step.user.id).await?;
        Ok(PasskeyPage { organization: step.organization, email: step.user.email, passkeys })
    }

    /// Options for adding a passkey, on a verified flow; the user's passkeys are excluded.
    ///
    /// # Errors
    /// As [`passkey_page`](Self::passkey_page); `connectionMissing` when passkeys are off.
    pub async fn passkey_registration_options(&self, flow_id: &str, binding: Option<&str>) -> Result<Value, Error> {
        let step = self.verified_step(flow_id, binding).await?;
        if !step.organization.settings.passkey_connection_enabled {
            return Err(passkeys_off());
        }
        let relying_party = self.relying_party(&step.organization)?;
        let existing: Vec<CredentialRef> =
            self.store.user_passkeys(&step.user.id).await?.iter().map(CredentialRef::from).collect();
        let started = relying_party.start_registration(&step.user.id, &step.user.email, &existing)?;
        self.store
            .insert_passkey_ceremony(&PasskeyCeremony {
                id: started.challenge,
                kind: CeremonyKind::Registration,
                flow_id: step.flow.id,
                organization_id: step.organization.id,
                user_id: Some(step.user.id),
                rp_id: relying_party.id,
                state: started.state,
                expires_at: self.clock.now().plus(CEREMONY_LIFETIME),
            })
            .await?;
        Ok(started.options)
    }

    /// Adds a passkey: the browser's answer to
    /// [`passkey_registration_options`](Self::passkey_registration_options). `name` defaults to
    /// "Passkey N".
    ///
    /// # Errors
    /// As [`passkey_page`](Self::passkey_page); `passkeyDataMissing`, `passkeyDataExpired`,
    /// `passkeyDataInvalid` (a failed check, or a credential registered already).
    pub async fn register_passkey(
        &self,
        flow_id: &str,
        binding: Option<&str>,
        response: &str,
        name: Option<&str>,
    ) -> Result<Passkey, Error> {
        let step = self.verified_step(flow_id, binding).await?;
        if !step.organization.settings.passkey_connection_enabled {
            return Err(passkeys_off());
        }
        let challenge = RelyingParty::registration_challenge(response)?;
        let ceremony = self.take_ceremony(&step.flow, &challenge, true).await?;
        let relying_party = self.relying_party(&step.organization)?;
        if ceremony.user_id.as_deref() != Some(step.user.id.as_str()) || ceremony.rp_id != relying_party.id {
            return Err(data_missing().with_internal("the ceremony was for another user or relying party"));
        }
        let credential = relying_party.finish_registration(&ceremony.state, response)?;
        let existing = self.store.user_passkeys(&step.user.id).await?;
        let name = passkey_name(name).unwrap_or_else(|| format!("Passkey {}", existing.len() + 1));
        let now = self.clock.now();
        let passkey = Passkey {
            credential_id: credential.credential_id,
            organization_id: step.organization.id.clone(),
            user_id: step.user.id.clone(),
            name,
            rp_id: relying_party.id,
            static_state: credential.static_state,
            dynamic_state: credential.dynamic_state,
            sign_count: credential.sign_count,
            backup_eligible: credential.backup_eligible,
            backed_up: credential.backed_up,
            aaguid: credential.aaguid,
            transports: credential.transports,
            created_at: now,
            last_used_at: None,
        };
        match self.store.insert_passkey(&passkey).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(data_invalid("This passkey is registered already."));
            }
            Err(e) => return Err(e.into()),
        }
        let detail = json!({
            "credentialId": passkey.credential_id, "name": passkey.name, "aaguid": passkey.aaguid,
            "backupEligible": passkey.backup_eligible, "userId": passkey.user_id,
        });
        self.audit.record(&step.organization.id, AuditKind::PasskeyAdded, Some(&step.user.email), detail).await;
        Ok(passkey)
    }

    /// Renames one of the verified user's passkeys.
    ///
    /// # Errors
    /// As [`passkey_page`](Self::passkey_page); `entityMissing` for a passkey the user does not have;
    /// `missingFields` for an empty name.
    pub async fn rename_passkey(
        &self,
        flow_id: &str,
        binding: Option<&str>,
        credential_id: &str,
        name: &str,
    ) -> Result<(), Error> {
        let step = self.verified_step(flow_id, binding).await?;
        let name = passkey_name(Some(name))
            .ok_or_else(|| Error::new(ErrorCode::MissingFields).with_message("Please give the passkey a name."))?;
        if self.store.rename_passkey(&step.user.id, credential_id, &name).await? {
            Ok(())
        } else {
            Err(Error::new(ErrorCode::EntityMissing).with_message("You have no such passkey."))
        }
    }

    /// Removes one of the verified user's passkeys.
    ///
    /// # Errors
    /// As [`rename_passkey`](Self::rename_passkey).
    pub async fn remove_passkey(&self, flow_id: &str, binding: Option<&str>, credential_id: &str) -> Result<(), Error> {
        let step = self.verified_step(flow_id, binding).await?;
        if !self.store.delete_passkey(&step.user.id, credential_id).await? {
            return Err(Error::new(ErrorCode::EntityMissing).with_message("You have no such passkey."));
        }
        let detail = json!({ "credentialId": credential_id, "userId": step.user.id, "by": "owner" });
        self.audit.record(&step.organization.id, AuditKind::PasskeyRemoved, Some(&step.user.email), detail).await;
        Ok(())
    }

    /// Leaves the passkey page for the application: the callback with a code, once.
    ///
    /// # Errors
    /// As [`passkey_page`](Self::passkey_page).
    pub async fn continue_after_passkeys(&self, flow_id: &str, binding: Option<&str>) -> Result<LoginOutcome, Error> {
        let step = self.verified_step(flow_id, binding).await?;
        if !self.store.hand_over_attempt(&step.attempt.id, self.clock.now()).await? {
            return Err(Error::new(ErrorCode::LoginAttemptInvalid)
                .with_message("This login is finished. Please start again from the application."));
        }
        self.redirect_with_code(&step.flow, &step.session).await
    }
}

impl LoginService {
    /// Forgets passkey ceremonies that expired unanswered.
    ///
    /// # Errors
    /// Store failures.
    pub async fn prune_passkey_ceremonies(&self) -> Result<u64, Error> {
        Ok(self.store.prune_passkey_ceremonies(self.clock.now()).await?)
    }

    /// An organization's passkeys of one email, for operators (admin API).
    ///
    /// # Errors
    /// `entityMissing` for an unknown organization or email; `entityInvalid` for a malformed email.
    pub async fn passkeys_of(&self, organization_id: &str, email: &str) -> Result<Vec<Passkey>, Error> {
        let organization = self.organization(organization_id).await?;
        let email = normalize_email(email)?;
        let user =
            self.store.user_by_email(&organization.id, &email, None).await?.ok_or_else(|| {
                Error::new(ErrorCode::EntityMissing).with_message("There is no user with this email.")
            })?;
        Ok(self.store.user_passkeys(&user.id).await?)
    }

    /// Removes a passkey of an organization, for operators (a lost device); audited.
    ///
    /// # Errors
    /// `entityMissing` when the organization has no such passkey.
    pub async fn revoke_passkey(&self, organization_id: &str, credential_id: &str) -> Result<(), Error> {
        let missing = || Error::new(ErrorCode::EntityMissing).with_message("This organization has no such passkey.");
        let passkey = self.store.passkey(credential_id).await?.filter(|p| p.organization_id == organization_id);
        let passkey = passkey.ok_or_else(missing)?;
        if !self.store.delete_passkey(&passkey.user_id, credential_id).await? {
            return Err(missing());
        }
        let detail = json!({ "credentialId": credential_id, "userId": passkey.user_id, "by": "admin" });
        self.audit.record(organization_id, AuditKind::PasskeyRemoved, Some(&passkey.user_id), detail).await;
        Ok(())
    }
}

/// A trimmed, shortened name; `None` when empty.
pub(super) fn passkey_name(name: Option<&str>) -> Option<String> {
    let name: String = name?.trim().chars().filter(|c| !c.is_control()).take(MAX_PASSKEY_NAME_CHARS).collect();
    (!name.is_empty()).then_some(name)
}
