//! Organizations: the tenants that log their users in through Portcullis. Each one is an OAuth client.

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
            return Err(Error::new(ErrorCode::MissingFields)
                .with_message("The organization name is required."));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(Error::new(ErrorCode::EntityInvalid).with_message(format!(
                "The organization name must be at most {MAX_NAME_CHARS} characters."
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::new(ErrorCode::EntityInvalid)
                .with_message("The organization name must not contain control characters."));
        }
        Ok(Self {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_owned(),
            created: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_validated() {
        let now = Timestamp::from_unix_millis(0);
        assert_eq!(
            Organization::new("  Acme ", now).map(|o| o.name),
            Ok("Acme".to_owned())
        );
        assert_eq!(
            Organization::new("   ", now).map_err(|e| e.code()),
            Err(ErrorCode::MissingFields)
        );
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(
            Organization::new(&long, now).map_err(|e| e.code()),
            Err(ErrorCode::EntityInvalid)
        );
        assert_eq!(
            Organization::new("a\u{7}b", now).map_err(|e| e.code()),
            Err(ErrorCode::EntityInvalid)
        );
    }

    #[test]
    fn ids_are_unique() {
        let now = Timestamp::from_unix_millis(0);
        let a = Organization::new("a", now).map(|o| o.id);
        let b = Organization::new("a", now).map(|o| o.id);
        assert_ne!(a, b);
    }
}
