use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A JWS signature algorithm Portcullis signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub enum SigningAlgorithm {
    /// Ed25519: the smallest tokens and the fastest signing. The default.
    #[default]
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit key, for clients that know nothing else.
    RS256,
}

impl SigningAlgorithm {
    /// The JOSE `alg` name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::RS256 => "RS256",
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a supported algorithm.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported signing algorithm `{0}` (expected `EdDSA` or `RS256`)")]
pub struct UnsupportedAlgorithm(pub String);

impl FromStr for SigningAlgorithm {
    type Err = UnsupportedAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "EdDSA" => Ok(Self::EdDSA),
            "RS256" => Ok(Self::RS256),
            other => Err(UnsupportedAlgorithm(other.to_owned())),
        }
    }
}
