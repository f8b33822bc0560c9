//! Organizations: the tenants that log their users in through Portcullis. Each one is an OAuth client.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::login::model::{AttemptType, LinkMethod};
use crate::{Error, ErrorCode};

/// Longest organization name accepted.
pub const MAX_NAME_CHARS: usize = 200;

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    /// Its id, which is also its OAuth `client_id`.
    pub id: String,
    /// Display name, shown on the hosted login page.
    pub name: String,
    /// When it was created.
    pub created: Timestamp,
    /// Allowed callback origins (`https://app.example.com`, `https://*.example.com`). Empty allows nothing.
    pub whitelist: Vec<String>,
    /// Login and session settings.
    pub settings: OrganizationSettings,
}

/// How an organization's application authenticates at the token endpoints (RFC 6749 §2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ClientType {
    /// A server that keeps the client secret: every code exchange and refresh must present it.
    #[default]
    Confidential,
    /// An app that cannot keep a secret (a native or single-page app): PKCE is required and refresh
    /// tokens rotate with theft detection.
    Public,
}

/// Most redirect URIs an organization may register.
pub const MAX_REDIRECT_URIS: usize = 50;

/// An organization's login settings (CentralAuth's `OrganizationSettings` names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct OrganizationSettings {
    /// Absolute lifetime of a login session in seconds; 0 = no limit.
    pub max_session_time: u64,
    /// Idle lifetime in seconds (a userinfo or verify is activity); 0 = no limit.
    pub max_inactivity_time: u64,
    /// The first login of an unknown email creates the user.
    pub enable_user_creation: bool,
    /// Admit `localhost`, `127.0.0.1` and `[::1]` callbacks (development).
    pub allow_localhost: bool,
    /// Require PKCE (S256) on every login. Only confidential clients that cannot send it should turn it off.
    pub require_pkce: bool,
    /// Re-check the session's IP, user agent or device id on every userinfo; a change ends the session.
    pub hijack_protection: bool,
    /// With hijack protection: compare the IP (/24 for IPv4, /56 for IPv6).
    pub hijack_protection_ip: bool,
    /// With hijack protection: compare the user agent.
    pub hijack_protection_user_agent: bool,
    /// With hijack protection: compare the device id.
    pub hijack_protection_device_id: bool,
    /// What the login mail carries: a code (default), a challenge of three numbers, or a link.
    pub default_login_attempt_type: AttemptType,
    /// For links: which device is logged in (`local`, `remote`, `userPick`).
    pub default_login_method: LinkMethod,
    /// Users may log in by email. When nothing else is enabled, email stays on.
    pub email_connection_enabled: bool,
    /// Users may log in with a passkey.
    pub passkey_connection_enabled: bool,
    /// The host the organization's login pages are served on (its own subdomain or custom domain, e.g.
    /// `login.acme.com`), and so the relying-party id of its passkeys. `None`: the server's host, shared
    /// with every organization without one.
    pub auth_domain: Option<String>,
    /// Confidential (the default: token requests must authenticate with the client secret) or public.
    pub client_type: ClientType,
    /// The redirect URIs the standard OAuth face accepts, compared as exact strings (RFC 9700 §2.1); a
    /// loopback URI may differ only in its port (RFC 8252 §7.3). The CentralAuth face uses the whitelist.
    pub redirect_uris: Vec<String>,
}

impl OrganizationSettings {
    /// These settings with the ones `changes` names (by their wire names) replaced: a JSON merge patch
    /// (RFC 7396) one level deep, so a partial update keeps every setting it leaves out.
    ///
    /// # Errors
    /// `entityInvalid` for an unknown setting or a value of the wrong type.
    pub fn merged(&self, changes: &serde_json::Map<String, serde_json::Value>) -> Result<Self, Error> {
        let invalid =
            |e: serde_json::Error| Error::new(ErrorCode::EntityInvalid).with_message(format!("settings: {e}"));
        let mut current = match serde_json::to_value(self).map_err(invalid)? {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        for (name, value) in changes {
            current.insert(name.clone(), value.clone());
        }
        serde_json::from_value(serde_json::Value::Object(current)).map_err(invalid)
    }

    /// Checks the settings that have a shape: the auth domain is a lowercase host name, no scheme or port.
    ///
    /// # Errors
    /// `entityInvalid`, saying which setting.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(domain) = &self.auth_domain {
            let label_ok = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            };
            let all_digits = domain.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            if domain.len() > 253 || all_digits || !domain.split('.').all(label_ok) {
                return Err(Error::new(ErrorCode::EntityInvalid).with_message(
                    "authDomain must be a lowercase host name such as login.example.com (no scheme, port or path).",
                ));
            }
        }
        if self.redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(Error::new(ErrorCode::EntityInvalid)
                .with_message(format!("At most {MAX_REDIRECT_URIS} redirect URIs may be registered.")));
        }
        for uri in &self.redirect_uris {
            // Codes travel in the redirect: cleartext http only to the same machine (RFC 9700 §2.6).
            let parsed = url::Url::parse(uri).ok().filter(|u| {
                let scheme_ok =
                    u.scheme() == "https" || (u.scheme() == "http" && crate::login::redirect::is_loopback(u));
                scheme_ok && u.host().is_some() && u.fragment().is_none()
            });
            if parsed.is_none() {
                return Err(Error::new(ErrorCode::EntityInvalid).with_message(format!(
                    "redirectUris: `{uri}` must be an absolute https URL (http only for localhost) without a fragment."
                )));
            }
        }
        Ok(())
    }

    /// Whether a public client must use PKCE: always; a confidential one as `requirePkce` says.
    #[must_use]
    pub fn pkce_required(&self) -> bool {
        self.require_pkce || self.client_type == ClientType::Public
    }

    /// Whether people may log in by email: enabled, or nothing else is ("email stays on").
    #[must_use]
    pub const fn email_login_allowed(&self) -> bool {
        self.email_connection_enabled || !self.passkey_connection_enabled
    }
}

impl Default for OrganizationSettings {
    fn default() -> Self {
        Self {
            max_session_time: 0,
            max_inactivity_time: 0,
            enable_user_creation: true,
            allow_localhost: false,
            require_pkce: true,
            hijack_protection: false,
            hijack_protection_ip: true,
            hijack_protection_user_agent: true,
            hijack_protection_device_id: true,
            default_login_attempt_type: AttemptType::Code,
            default_login_method: LinkMethod::Local,
            email_connection_enabled: true,
            passkey_connection_enabled: false,
            auth_domain: None,
            client_type: ClientType::Confidential,
            redirect_uris: Vec::new(),
        }
    }
}

impl Organization {
    /// A new organization with a fresh id, after validating its name.
    ///
    /// # Errors
    /// `missingFields` for an empty name, `entityInvalid` for one too long or with control characters.
    pub fn new(name: &str, now: Timestamp) -> Result<Self, Error> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::new(ErrorCode::MissingFields).with_message("The organization name is required."));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(Error::new(ErrorCode::EntityInvalid)
                .with_message(format!("The organization name must be at most {MAX_NAME_CHARS} characters.")));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::new(ErrorCode::EntityInvalid)
                .with_message("The organization name must not contain control characters."));
        }
        Ok(Self {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_owned(),
            created: now,
            whitelist: Vec::new(),
            settings: OrganizationSettings::default(),
        })
    }

    /// Replaces the whitelist after validating every entry; bare domains are stored as `https://` origins.
    ///
    /// # Errors
    /// `entityInvalid` naming the first bad entry.
    pub fn set_whitelist(&mut self, entries: Vec<String>) -> Result<(), Error> {
        let entries: Vec<String> = entries.iter().map(|e| crate::login::redirect::normalize_entry(e)).collect();
        crate::login::redirect::Whitelist::parse(&entries)?;
        self.whitelist = entries;
        Ok(())
    }

    /// The parsed whitelist.
    ///
    /// # Errors
    /// `entityInvalid` if a stored entry no longer parses.
    pub fn parsed_whitelist(&self) -> Result<crate::login::redirect::Whitelist, Error> {
        crate::login::redirect::Whitelist::parse(&self.whitelist)
    }
}

/// An organization API key as stored: only the SHA-256 of the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRecord {
    /// Public id.
    pub id: String,
    /// The organization it acts for.
    pub organization_id: String,
    /// Hex SHA-256 of the secret.
    #[serde(skip)]
    pub secret_hash: String,
    /// Creation time.
    pub created: Timestamp,
    /// Revocation time.
    pub revoked: Option<Timestamp>,
}

/// A new API key: the secret, shown once, and the record to store.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// The secret (`pcak_…`), shown once.
    pub secret: String,
    /// What is stored.
    pub record: ApiKeyRecord,
}

/// Prefix of API key secrets, so they are recognisable in configuration and secret scanners.
pub const API_KEY_PREFIX: &str = "pcak_";

impl ApiKeyRecord {
    /// Makes a key for an organization.
    ///
    /// # Errors
    /// `entityInvalid` for the console's operator organization: an API key of it could change operators'
    /// roles through the SuperTokens core face. A failure of the system random source.
    pub fn generate(organization_id: &str, now: Timestamp) -> Result<NewApiKey, Error> {
        if organization_id == crate::console::ORGANIZATION_ID {
            return Err(Error::new(ErrorCode::EntityInvalid)
                .with_message("The console's operator organization has no API keys; add operators instead."));
        }
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| Error::new(ErrorCode::GenericError).with_internal("the system random source failed"))?;
        let secret = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        let record = Self {
            id: uuid::Uuid::now_v7().to_string(),
            organization_id: organization_id.to_owned(),
            secret_hash: Self::hash(&secret),
            created: now,
            revoked: None,
        };
        Ok(NewApiKey { secret, record })
    }

    /// The stored form of a secret.
    #[must_use]
    pub fn hash(secret: &str) -> String {
        crate::session::sha256_hex(secret.as_bytes())
    }
}

/// A client secret: 64 characters of `[A-Za-z0-9_-]` (base64url of 48 random bytes). The compat token key
/// is its UTF-8 bytes, and A256CBC-HS512 needs exactly 64 of them; the alphabet also makes HTTP Basic's
/// form-encoding a no-op.
///
/// # Errors
/// If the system random source fails.
pub fn generate_client_secret() -> Result<String, Error> {
    let mut bytes = [0u8; 48];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| Error::new(ErrorCode::GenericError).with_internal("the system random source failed"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The context a client secret is sealed under (binds it to its organization).
#[must_use]
pub fn client_secret_context(organization_id: &str) -> Vec<u8> {
    format!("organization client secret:{organization_id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_validated() {
        let with = |uris: &[&str]| OrganizationSettings {
            redirect_uris: uris.iter().map(|u| (*u).to_owned()).collect(),
            ..OrganizationSettings::default()
        };
        assert!(
            with(&["https://app.example.com/cb", "http://127.0.0.1:8080/cb", "http://localhost/cb"]).validate().is_ok()
        );
        for bad in ["http://app.example.com/cb", "https://app.example.com/cb#x", "ftp://app.example.com/", "/cb", "x"] {
            let error = with(&[bad]).validate().expect_err(bad);
            assert_eq!(error.code(), ErrorCode::EntityInvalid, "{bad}");
        }
        let many: Vec<String> = (0..=MAX_REDIRECT_URIS).map(|i| format!("https://app.example.com/{i}")).collect();
        let too_many = OrganizationSettings { redirect_uris: many, ..OrganizationSettings::default() };
        assert_eq!(too_many.validate().map_err(|e| e.code()), Err(ErrorCode::EntityInvalid));
    }

    #[test]
    fn a_merge_changes_only_the_settings_it_names() {
        let start =
            OrganizationSettings { allow_localhost: true, max_session_time: 10, ..OrganizationSettings::default() };
        let changes = serde_json::json!({ "maxSessionTime": 60, "authDomain": "login.acme.com" });
        let merged = start.merged(changes.as_object().expect("object")).expect("merge");
        assert_eq!(
            merged,
            OrganizationSettings {
                max_session_time: 60,
                auth_domain: Some("login.acme.com".to_owned()),
                ..start.clone()
            }
        );
        let cleared = merged.merged(serde_json::json!({ "authDomain": null }).as_object().expect("object"));
        assert_eq!(cleared.map(|s| s.auth_domain), Ok(None));
        for bad in [serde_json::json!({ "nope": 1 }), serde_json::json!({ "allowLocalhost": "yes" })] {
            let error = start.merged(bad.as_object().expect("object")).expect_err("refused");
            assert_eq!(error.code(), ErrorCode::EntityInvalid);
        }
    }

    #[test]
    fn names_are_trimmed_and_validated() {
        let now = Timestamp::from_unix_millis(0);
        assert_eq!(Organization::new("  Acme ", now).map(|o| o.name), Ok("Acme".to_owned()));
        assert_eq!(Organization::new("   ", now).map_err(|e| e.code()), Err(ErrorCode::MissingFields));
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(Organization::new(&long, now).map_err(|e| e.code()), Err(ErrorCode::EntityInvalid));
        assert_eq!(Organization::new("a\u{7}b", now).map_err(|e| e.code()), Err(ErrorCode::EntityInvalid));
    }

    #[test]
    fn ids_are_unique() {
        let now = Timestamp::from_unix_millis(0);
        let a = Organization::new("a", now).map(|o| o.id);
        let b = Organization::new("a", now).map(|o| o.id);
        assert_ne!(a, b);
    }
}
