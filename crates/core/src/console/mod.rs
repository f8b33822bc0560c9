//! The admin console's rules. Operators are users of one built-in organization, the operator
//! organization: they sign in through the hosted login like anyone else, and their console role is a
//! role of that organization's role store (the one SuperTokens apps use), so a console session is an
//! ordinary Portcullis session (rotation, theft detection, revocation).

use std::sync::Arc;

use aws_lc_rs::{constant_time, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::json;

use crate::abuse::{AuditKind, AuditLog};
use crate::clock::Clock;
use crate::keys::MasterKey;
use crate::login::model::User;
use crate::login::normalize_email;
use crate::organization::{ClientType, Organization, OrganizationSettings};
use crate::store::{RoleChange, Store, StoreError};
use crate::{Error, ErrorCode};

/// The operator organization's id (its OAuth `client_id`). Generated ids are UUIDs, so this never
/// collides with a tenant's.
pub const ORGANIZATION_ID: &str = "portcullis-console";

/// The operator organization's name, shown on its login page.
pub const ORGANIZATION_NAME: &str = "Portcullis console";

/// The path of the console's OAuth callback.
pub const CALLBACK_PATH: &str = "/console/callback";

/// The role store's tenant for console roles.
const TENANT: &str = "public";

/// What an operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OperatorRole {
    /// Reads everything except secrets; acts on nothing.
    Viewer,
    /// Reads and acts.
    Admin,
}

impl OperatorRole {
    /// Every role, weakest first.
    pub const ALL: [Self; 2] = [Self::Viewer, Self::Admin];

    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Admin => "admin",
        }
    }

    /// From the stored name.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

/// A person who may use the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Operator {
    /// Their user id in the operator organization.
    pub user_id: String,
    /// Their email.
    pub email: String,
    /// Their role.
    pub role: OperatorRole,
}

impl Operator {
    /// Refuses an action to a viewer.
    ///
    /// # Errors
    /// `noPermission` (403) when the operator is not an admin.
    pub fn require_admin(&self) -> Result<(), Error> {
        if self.role == OperatorRole::Admin {
            return Ok(());
        }
        Err(Error::new(ErrorCode::NoPermission)
            .with_message("This action needs the console's admin role; you are a viewer.")
            .with_internal(format!("viewer {} tried an admin action", self.user_id)))
    }
}

/// The token every console form of a login session carries: an HMAC of the session id under a key
/// derived from the master key, so a page of another session (or another site) cannot forge it.
#[derive(Debug)]
pub struct FormTokens {
    key: hmac::Key,
}

impl FormTokens {
    /// Tokens keyed from `master`.
    #[must_use]
    pub fn new(master: &MasterKey) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, &master.derive("portcullis console form token")) }
    }

    /// The token of this login session's forms.
    #[must_use]
    pub fn token(&self, login_session_id: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, login_session_id.as_bytes()))
    }

    /// Checks a form's token against its login session.
    ///
    /// # Errors
    /// `noPermission` (403) when it is missing or wrong.
    pub fn check(&self, login_session_id: &str, presented: Option<&str>) -> Result<(), Error> {
        let expected = self.token(login_session_id);
        let presented = presented.unwrap_or_default();
        if constant_time::verify_slices_are_equal(expected.as_bytes(), presented.as_bytes()).is_ok() {
            return Ok(());
        }
        Err(Error::new(ErrorCode::NoPermission)
            .with_message("The form expired or did not come from the console; reload the page and try again.")
            .with_internal("console form token missing or wrong"))
    }
}

/// The console's rules over one store.
#[derive(Debug)]
pub struct Console {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit: AuditLog,
    form_tokens: FormTokens,
    public_url: String,
}

impl Console {
    /// The console of the server at `public_url` over `store`; its form tokens are keyed by a key derived
    /// from the master key.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, master: &MasterKey, public_url: String) -> Self {
        let audit = AuditLog::new(Arc::clone(&store), Arc::clone(&clock));
        Self { store, clock, audit, form_tokens: FormTokens::new(master), public_url }
    }

    /// The operator organization as this server needs it: a public client whose one redirect URI is the
    /// console callback on the server's public URL, which creates no users on login (operators are added,
    /// never self-registered). Created when the first operator is added, so a server without a console
    /// has no such organization; put back in shape on every sign-in, so a changed public URL or an edit
    /// through the admin API cannot open it. Its other settings (passkeys, captcha, attempt type) stay the
    /// operators' choice.
    ///
    /// # Errors
    /// A store failure.
    pub async fn ensure_organization(&self) -> Result<Organization, Error> {
        let public_url = self.public_url.as_str();
        let base = url::Url::parse(public_url)
            .map_err(|e| Error::new(ErrorCode::GenericError).with_internal(format!("public url: {e}")))?;
        let callback = format!("{}{CALLBACK_PATH}", public_url.trim_end_matches('/'));
        let existing = self.store.organization(ORGANIZATION_ID).await?;
        let mut organization = existing.clone().unwrap_or_else(|| Organization {
            id: ORGANIZATION_ID.to_owned(),
            name: ORGANIZATION_NAME.to_owned(),
            created: self.clock.now(),
            whitelist: Vec::new(),
            settings: OrganizationSettings { passkey_connection_enabled: true, ..OrganizationSettings::default() },
        });
        organization.whitelist = vec![base.origin().ascii_serialization()];
        organization.settings.redirect_uris = vec![callback];
        organization.settings.client_type = ClientType::Public;
        organization.settings.require_pkce = true;
        organization.settings.enable_user_creation = false;
        organization.settings.allow_localhost = crate::login::redirect::is_loopback(&base);
        match existing {
            Some(stored) if stored == organization => {}
            Some(_) => {
                self.store.update_organization(&organization).await?;
            }
            None => match self.store.insert_organization(&organization).await {
                Ok(()) => tracing::info!("operator organization created"),
                // Another instance created it first.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            },
        }
        Ok(organization)
    }

    /// Adds an operator by email, or changes their role: the user is created in the operator
    /// organization if missing (unverified until their first login).
    ///
    /// # Errors
    /// `missingFields` / `entityInvalid` for a bad email, store failures.
    pub async fn put_operator(&self, email: &str, role: OperatorRole) -> Result<Operator, Error> {
        let email = normalize_email(email)?;
        self.ensure_organization().await?;
        let now = self.clock.now();
        let candidate = User {
            id: uuid::Uuid::now_v7().to_string(),
            organization_id: ORGANIZATION_ID.to_owned(),
            email: email.clone(),
            verified: false,
            blocked: false,
            created: now,
            updated: now,
            last_login: None,
        };
        let user =
            self.store.user_by_email(ORGANIZATION_ID, &email, Some(&candidate)).await?.ok_or_else(|| {
                Error::new(ErrorCode::GenericError).with_internal("the operator's user was not created")
            })?;
        for other in OperatorRole::ALL {
            self.store.put_role(ORGANIZATION_ID, other.as_str(), &[]).await?;
            if other != role {
                self.store.remove_user_role(ORGANIZATION_ID, TENANT, &user.id, other.as_str()).await?;
            }
        }
        if let RoleChange::UnknownRole =
            self.store.add_user_role(ORGANIZATION_ID, TENANT, &user.id, role.as_str()).await?
        {
            return Err(Error::new(ErrorCode::GenericError).with_internal("the console role vanished"));
        }
        Ok(Operator { user_id: user.id, email, role })
    }

    /// An operator's change to the operators: `role` for the person with `email`, or `None` to remove them.
    /// Nobody removes or demotes themselves, so the console always keeps the admin who is using it.
    /// Returns the operator as they now are (`None` once removed).
    ///
    /// # Errors
    /// `noPermission` for a viewer; `entityInvalid` for a change to oneself; `entityMissing` when removing
    /// someone who is not an operator; a bad email; store failures.
    pub async fn change_operator(
        &self,
        by: &Operator,
        email: &str,
        role: Option<OperatorRole>,
    ) -> Result<Option<Operator>, Error> {
        by.require_admin()?;
        if normalize_email(email)? == by.email && role != Some(OperatorRole::Admin) {
            return Err(Error::new(ErrorCode::EntityInvalid)
                .with_message("You cannot remove or demote yourself; ask another admin."));
        }
        match role {
            Some(role) => self.put_operator(email, role).await.map(Some),
            None if self.remove_operator(email).await? => Ok(None),
            None => Err(Error::new(ErrorCode::EntityMissing).with_message("There is no operator with this email.")),
        }
    }

    /// Takes every console role from the operator with this email; `false` if they had none.
    ///
    /// # Errors
    /// Store failures.
    pub async fn remove_operator(&self, email: &str) -> Result<bool, Error> {
        let email = normalize_email(email)?;
        let Some(user) = self.store.user_by_email(ORGANIZATION_ID, &email, None).await? else {
            return Ok(false);
        };
        let mut had = false;
        for role in OperatorRole::ALL {
            if let RoleChange::Done(true) =
                self.store.remove_user_role(ORGANIZATION_ID, TENANT, &user.id, role.as_str()).await?
            {
                had = true;
            }
        }
        Ok(had)
    }

    /// The operator with this user id, with their strongest role; `None` for a user without one.
    ///
    /// # Errors
    /// Store failures.
    pub async fn operator(&self, user_id: &str) -> Result<Option<Operator>, Error> {
        let roles = self.store.user_roles(ORGANIZATION_ID, TENANT, user_id).await?;
        let Some(role) = roles.iter().filter_map(|r| OperatorRole::parse(r)).max() else {
            return Ok(None);
        };
        let Some(user) = self.store.user(user_id).await?.filter(|u| u.organization_id == ORGANIZATION_ID) else {
            return Ok(None);
        };
        Ok(Some(Operator { user_id: user.id, email: user.email, role }))
    }

    /// Every operator, admins first, then by email.
    ///
    /// # Errors
    /// Store failures.
    pub async fn operators(&self) -> Result<Vec<Operator>, Error> {
        let mut operators = Vec::new();
        for role in OperatorRole::ALL.into_iter().rev() {
            let users = self.store.role_users(ORGANIZATION_ID, TENANT, role.as_str()).await?.unwrap_or_default();
            for user_id in users {
                if operators.iter().any(|o: &Operator| o.user_id == user_id) {
                    continue;
                }
                if let Some(user) = self.store.user(&user_id).await? {
                    operators.push(Operator { user_id, email: user.email, role });
                }
            }
        }
        operators.sort_by(|a, b| b.role.cmp(&a.role).then_with(|| a.email.cmp(&b.email)));
        Ok(operators)
    }

    /// Signs an operator out: ends their login session, so its access and refresh tokens stop working.
    ///
    /// # Errors
    /// Store failures.
    pub async fn sign_out(&self, login_session_id: &str) -> Result<(), Error> {
        self.store.end_login_session(login_session_id, self.clock.now()).await?;
        Ok(())
    }

    /// Records an action in the operator organization's audit log: `by` is the operator's email, or
    /// `admin token` for the CLI and the admin API.
    pub async fn record_action(&self, by: &str, action: &str, target: &str) {
        let detail = json!({ "action": action, "target": target });
        self.audit.record(ORGANIZATION_ID, AuditKind::ConsoleAction, Some(by), detail).await;
    }

    /// The form tokens.
    #[must_use]
    pub const fn form_tokens(&self) -> &FormTokens {
        &self.form_tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operator(role: OperatorRole) -> Operator {
        Operator { user_id: "u".to_owned(), email: "o@example.com".to_owned(), role }
    }

    #[test]
    fn only_admins_act_and_roles_order_by_strength() {
        assert!(operator(OperatorRole::Admin).require_admin().is_ok());
        let refused = operator(OperatorRole::Viewer).require_admin().expect_err("a viewer acted");
        assert_eq!(refused.code(), ErrorCode::NoPermission);
        assert_eq!(refused.status(), 403);
        assert!(OperatorRole::Admin > OperatorRole::Viewer);
        assert_eq!(OperatorRole::parse("admin"), Some(OperatorRole::Admin));
        assert_eq!(OperatorRole::parse("Admin"), None);
    }

    #[test]
    fn a_form_token_belongs_to_one_session_and_one_master_key() {
        let (master, _) = MasterKey::generate().expect("master key");
        let (other_master, _) = MasterKey::generate().expect("master key");
        let tokens = FormTokens::new(&master);
        let token = tokens.token("session-a");
        assert!(tokens.check("session-a", Some(&token)).is_ok());
        for wrong in [None, Some(""), Some(token.as_str())] {
            let session = if wrong == Some(token.as_str()) { "session-b" } else { "session-a" };
            let refused = tokens.check(session, wrong).expect_err("a wrong form token passed");
            assert_eq!(refused.code(), ErrorCode::NoPermission);
        }
        let forged = FormTokens::new(&other_master).token("session-a");
        assert!(tokens.check("session-a", Some(&forged)).is_err());
    }
}
