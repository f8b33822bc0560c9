//! Account credentials: properties and the auth value, sealed with the master key (context = account id).

use std::collections::BTreeMap;

use portcullis_core::keys::MasterKey;
use portcullis_core::{Error, ErrorCode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What the store keeps sealed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// Account connector properties (session values included).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Cyclr's `AuthValue`: the API key, the Basic value, or the OAuth 2 JSON.
    #[serde(default)]
    pub auth_value: Option<String>,
}

impl Credentials {
    /// Seals for storage.
    ///
    /// # Errors
    /// A sealing failure.
    pub fn seal(&self, master: &MasterKey, account_id: &str) -> Result<Vec<u8>, Error> {
        let plain = serde_json::to_vec(self).map_err(|e| Error::new(ErrorCode::GenericError).with_internal(e))?;
        master.seal(account_id.as_bytes(), &plain).map_err(|e| Error::new(ErrorCode::GenericError).with_internal(e))
    }

    /// Opens what [`seal`](Self::seal) wrote for this account.
    ///
    /// # Errors
    /// The ciphertext does not open with this key and account id.
    pub fn open(master: &MasterKey, account_id: &str, sealed: &[u8]) -> Result<Self, Error> {
        let plain = master
            .open(account_id.as_bytes(), sealed)
            .map_err(|e| Error::new(ErrorCode::GenericError).with_internal(format!("connector credentials: {e}")))?;
        serde_json::from_slice(&plain).map_err(|e| Error::new(ErrorCode::GenericError).with_internal(e))
    }

    /// The OAuth 2 value, if the auth value is one.
    #[must_use]
    pub fn oauth(&self) -> Option<OAuthValue> {
        self.auth_value.as_deref().and_then(|v| serde_json::from_str(v).ok())
    }
}

/// Cyclr's OAuth 2 `AuthValue`, with ISO 8601 dates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OAuthValue {
    /// Bearer token.
    #[serde(default)]
    pub access_token: String,
    /// Refresh token, if any.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Access-token expiry.
    #[serde(default)]
    pub expires: Option<String>,
    /// Refresh-token expiry.
    #[serde(default)]
    pub refresh_expires: Option<String>,
}

impl OAuthValue {
    /// `Expires` as Unix milliseconds.
    #[must_use]
    pub fn expires_millis(&self) -> Option<i64> {
        let at = OffsetDateTime::parse(self.expires.as_deref()?, &Rfc3339).ok()?;
        i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
    }
}

/// Unix milliseconds as ISO 8601.
#[must_use]
pub(crate) fn iso(millis: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()?.format(&Rfc3339).ok()
}
