//! Organizations: the tenants that log their users in through Portcullis. Each one is an OAuth client.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::clock::Timestamp;
use crate::{Error, ErrorCode};

/// Longest organization name accepted.
pub const MAX_NAME_CHARS: usize = 200;

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    /// Its id, which is also its OAuth `client_id`.
    pub id: String,
    /// Display name, shown on the hosted login page.
    pub name: String,
    /// When it was created.
    pub created: Timestamp,
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
        Ok(Self { id: uuid::Uuid::now_v7().to_string(), name: name.to_owned(), created: now })
    }
}

/// An organization API key as stored: only the SHA-256 of the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    /// If the system random source fails.
    pub fn generate(organization_id: &str, now: Timestamp) -> Result<NewApiKey, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
