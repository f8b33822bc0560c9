use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Value, json};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};

use super::{KeyError, SigningAlgorithm};
use crate::session::VerificationKey;

/// A parsed private key, held once per `kid` so signing never re-parses PKCS#8.
pub struct SigningKey {
    kid: String,
    algorithm: SigningAlgorithm,
    pair: Pair,
    public_jwk: Value,
    encoded_header: String,
    verification_key: VerificationKey,
}

enum Pair {
    Ed25519(Ed25519KeyPair),
    Rsa(aws_lc_rs::rsa::KeyPair),
}

impl SigningKey {
    /// A fresh key, returned with its PKCS#8 document for sealing.
    ///
    /// # Errors
    /// If key generation fails.
    pub fn generate(algorithm: SigningAlgorithm, kid: &str) -> Result<(Self, Vec<u8>), KeyError> {
        let pkcs8 = match algorithm {
            SigningAlgorithm::EdDSA => {
                Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Generate)?.as_ref().to_vec()
            }
            SigningAlgorithm::RS256 => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
                let der: Pkcs8V1Der<'static> = pair.as_der().map_err(|_| KeyError::Generate)?;
                der.as_ref().to_vec()
            }
        };
        let key = Self::from_pkcs8(algorithm, kid, &pkcs8)?;
        Ok((key, pkcs8))
    }

    /// Parses a PKCS#8 private key.
    ///
    /// # Errors
    /// [`KeyError::InvalidPrivateKey`] if the document is not a key of `algorithm`.
    pub fn from_pkcs8(algorithm: SigningAlgorithm, kid: &str, pkcs8: &[u8]) -> Result<Self, KeyError> {
        let (pair, key_fields) = match algorithm {
            SigningAlgorithm::EdDSA => {
                let pair =
                    Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|_| KeyError::InvalidPrivateKey)?;
                let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
                (Pair::Ed25519(pair), json!({ "kty": "OKP", "crv": "Ed25519", "x": x }))
            }
            SigningAlgorithm::RS256 => {
                let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8).map_err(|_| KeyError::InvalidPrivateKey)?;
                let parts = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                let n = URL_SAFE_NO_PAD.encode(strip_leading_zeros(&parts.n));
                let e = URL_SAFE_NO_PAD.encode(strip_leading_zeros(&parts.e));
                (Pair::Rsa(pair), json!({ "kty": "RSA", "n": n, "e": e }))
            }
        };
        let mut public_jwk = key_fields;
        if let Some(fields) = public_jwk.as_object_mut() {
            fields.insert("kid".to_owned(), Value::from(kid));
            fields.insert("alg".to_owned(), Value::from(algorithm.as_str()));
            fields.insert("use".to_owned(), Value::from("sig"));
        }
        // `version: "5"` is the SuperTokens access-token version: its backend SDKs refuse a header without it.
        let header = json!({ "alg": algorithm.as_str(), "kid": kid, "typ": "JWT", "version": "5" });
        let encoded_header = URL_SAFE_NO_PAD.encode(header.to_string());
        let jwk: Jwk = serde_json::from_value(public_jwk.clone()).map_err(|_| KeyError::InvalidPrivateKey)?;
        let verification_key = VerificationKey {
            key: DecodingKey::from_jwk(&jwk).map_err(|_| KeyError::InvalidPrivateKey)?,
            algorithm: match algorithm {
                SigningAlgorithm::EdDSA => Algorithm::EdDSA,
                SigningAlgorithm::RS256 => Algorithm::RS256,
            },
        };
        Ok(Self { kid: kid.to_owned(), algorithm, pair, public_jwk, encoded_header, verification_key })
    }

    /// The key id.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    #[must_use]
    pub const fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The public key as a JWK, with `kid`, `alg` and `use`.
    #[must_use]
    pub const fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// The public half, for verifying what this key signed.
    #[must_use]
    pub const fn verification_key(&self) -> &VerificationKey {
        &self.verification_key
    }

    /// Signs `claims` as a compact JWS (`header.payload.signature`) with `typ: JWT`.
    ///
    /// # Errors
    /// If the claims cannot be serialized or the signature fails.
    pub fn sign_jwt<C: Serialize + ?Sized>(&self, claims: &C) -> Result<String, KeyError> {
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
        let mut token = String::with_capacity(self.encoded_header.len() + payload.len() * 4 / 3 + 360);
        token.push_str(&self.encoded_header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = match &self.pair {
            Pair::Ed25519(pair) => pair.sign(token.as_bytes()).as_ref().to_vec(),
            Pair::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), token.as_bytes(), &mut signature)
                    .map_err(|_| KeyError::Sign)?;
                signature
            }
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len().saturating_sub(1));
    &bytes[first..]
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Validation, decode};
    use serde_json::Value;

    use super::*;

    fn verify(key: &SigningKey, token: &str, alg: Algorithm) -> Value {
        let jwk: Jwk = serde_json::from_value(key.public_jwk().clone()).expect("jwk");
        let decoding = DecodingKey::from_jwk(&jwk).expect("decoding key");
        let mut validation = Validation::new(alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        decode::<Value>(token, &decoding, &validation).expect("valid signature").claims
    }

    #[test]
    fn eddsa_tokens_verify_with_the_published_jwk() -> Result<(), KeyError> {
        let (key, pkcs8) = SigningKey::generate(SigningAlgorithm::EdDSA, "d-1")?;
        let token = key.sign_jwt(&json!({ "sub": "u1" }))?;
        assert_eq!(verify(&key, &token, Algorithm::EdDSA)["sub"], "u1");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.kid.as_deref(), Some("d-1"));
        let reparsed = SigningKey::from_pkcs8(SigningAlgorithm::EdDSA, "d-1", &pkcs8)?;
        assert_eq!(reparsed.public_jwk(), key.public_jwk());
        Ok(())
    }

    #[test]
    fn rs256_tokens_verify_with_the_published_jwk() -> Result<(), KeyError> {
        let (key, _) = SigningKey::generate(SigningAlgorithm::RS256, "d-2")?;
        assert_eq!(key.public_jwk()["kty"], "RSA");
        assert_eq!(key.public_jwk()["e"], "AQAB");
        let token = key.sign_jwt(&json!({ "sub": "u2" }))?;
        assert_eq!(verify(&key, &token, Algorithm::RS256)["sub"], "u2");
        Ok(())
    }

    #[test]
    fn a_key_of_the_wrong_algorithm_is_rejected() -> Result<(), KeyError> {
        let (_, pkcs8) = SigningKey::generate(SigningAlgorithm::EdDSA, "d-3")?;
        let err = SigningKey::from_pkcs8(SigningAlgorithm::RS256, "d-3", &pkcs8).map(|_| ());
        assert_eq!(err, Err(KeyError::InvalidPrivateKey));
        Ok(())
    }
}
