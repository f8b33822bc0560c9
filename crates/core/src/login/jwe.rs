//! The CentralAuth-compatible token format: compact JWE, `{"alg":"dir","enc":"A256CBC-HS512"}`, keyed by
//! the UTF-8 bytes of the organization's 64-character client secret, so CentralAuth's npm library can
//! decrypt tokens locally with `jose.jwtDecrypt` (RFC 7516; content encryption per RFC 7518 §5.2.5).
//!
//! Built from aws-lc-rs primitives: AES-256-CBC with PKCS#7 padding and HMAC-SHA-512, composed as the RFC
//! says (MAC key = first 32 bytes, encryption key = last 32; tag = first 32 bytes of
//! HMAC(AAD ‖ IV ‖ ciphertext ‖ AAD bit length)), checked against the RFC's own test vector.

use aws_lc_rs::cipher::{
    AES_256, DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The protected header, fixed: no `zip`, no key id.
const HEADER: &str = r#"{"alg":"dir","enc":"A256CBC-HS512"}"#;
/// Key length of A256CBC-HS512.
pub const JWE_KEY_LEN: usize = 64;

/// Why a token does not decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JweError {
    /// The key is not 64 bytes.
    #[error("the key must be exactly 64 bytes")]
    KeyLength,
    /// Not a compact JWE of this format.
    #[error("malformed token")]
    Malformed,
    /// The tag does not verify (another key, or altered).
    #[error("the token does not authenticate")]
    Authentication,
    /// A primitive failed.
    #[error("cipher failure")]
    Cipher,
}

/// Encrypts `plaintext` (the JWT claims, JSON) into a compact JWE.
///
/// # Errors
/// [`JweError::KeyLength`] for a key that is not 64 bytes.
pub fn encrypt(key: &[u8], plaintext: &[u8]) -> Result<String, JweError> {
    let mut iv = [0u8; 16];
    SystemRandom::new().fill(&mut iv).map_err(|_| JweError::Cipher)?;
    let header = URL_SAFE_NO_PAD.encode(HEADER);
    let (ciphertext, tag) = seal(key, header.as_bytes(), &iv, plaintext)?;
    Ok(format!(
        "{header}..{}.{}.{}",
        URL_SAFE_NO_PAD.encode(iv),
        URL_SAFE_NO_PAD.encode(ciphertext),
        URL_SAFE_NO_PAD.encode(tag)
    ))
}

/// Decrypts a compact JWE made by [`encrypt`] (or by `jose` with the same key and algorithms).
///
/// # Errors
/// A [`JweError`].
pub fn decrypt(key: &[u8], token: &str) -> Result<Vec<u8>, JweError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, encrypted_key, iv, ciphertext, tag] = parts.as_slice() else { return Err(JweError::Malformed) };
    let decoded_header = URL_SAFE_NO_PAD.decode(header).map_err(|_| JweError::Malformed)?;
    let header_json: serde_json::Value = serde_json::from_slice(&decoded_header).map_err(|_| JweError::Malformed)?;
    if header_json["alg"] != "dir" || header_json["enc"] != "A256CBC-HS512" || header_json.get("zip").is_some() {
        return Err(JweError::Malformed);
    }
    if !encrypted_key.is_empty() {
        return Err(JweError::Malformed);
    }
    let iv: [u8; 16] =
        URL_SAFE_NO_PAD.decode(iv).map_err(|_| JweError::Malformed)?.try_into().map_err(|_| JweError::Malformed)?;
    let ciphertext = URL_SAFE_NO_PAD.decode(ciphertext).map_err(|_| JweError::Malformed)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| JweError::Malformed)?;
    open(key, header.as_bytes(), &iv, &ciphertext, &tag)
}

fn split_key(key: &[u8]) -> Result<(&[u8], &[u8]), JweError> {
    if key.len() != JWE_KEY_LEN {
        return Err(JweError::KeyLength);
    }
    Ok(key.split_at(32))
}

fn tag(mac_key: &[u8], aad: &[u8], iv: &[u8], ciphertext: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA512, mac_key);
    let mut context = hmac::Context::with_key(&key);
    context.update(aad);
    context.update(iv);
    context.update(ciphertext);
    context.update(&(u64::try_from(aad.len()).unwrap_or(u64::MAX).saturating_mul(8)).to_be_bytes());
    let full = context.sign();
    let mut truncated = [0u8; 32];
    truncated.copy_from_slice(&full.as_ref()[..32]);
    truncated
}

/// AEAD_AES_256_CBC_HMAC_SHA_512 encryption with a given IV.
fn seal(key: &[u8], aad: &[u8], iv: &[u8; 16], plaintext: &[u8]) -> Result<(Vec<u8>, [u8; 32]), JweError> {
    let (mac_key, enc_key) = split_key(key)?;
    let cipher_key = UnboundCipherKey::new(&AES_256, enc_key).map_err(|_| JweError::Cipher)?;
    let encrypting = PaddedBlockEncryptingKey::cbc_pkcs7(cipher_key).map_err(|_| JweError::Cipher)?;
    let mut buffer = plaintext.to_vec();
    encrypting
        .less_safe_encrypt(&mut buffer, EncryptionContext::Iv128(FixedLength::from(*iv)))
        .map_err(|_| JweError::Cipher)?;
    let tag = tag(mac_key, aad, iv, &buffer);
    Ok((buffer, tag))
}

fn open(key: &[u8], aad: &[u8], iv: &[u8; 16], ciphertext: &[u8], presented: &[u8]) -> Result<Vec<u8>, JweError> {
    let (mac_key, enc_key) = split_key(key)?;
    // Authenticate before decrypting: no padding oracle.
    let expected = tag(mac_key, aad, iv, ciphertext);
    verify_slices_are_equal(&expected, presented).map_err(|_| JweError::Authentication)?;
    let cipher_key = UnboundCipherKey::new(&AES_256, enc_key).map_err(|_| JweError::Cipher)?;
    let decrypting = PaddedBlockDecryptingKey::cbc_pkcs7(cipher_key).map_err(|_| JweError::Cipher)?;
    let mut buffer = ciphertext.to_vec();
    let plain = decrypting
        .decrypt(&mut buffer, DecryptionContext::Iv128(FixedLength::from(*iv)))
        .map_err(|_| JweError::Authentication)?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let clean: String = text.split_whitespace().collect();
        (0..clean.len()).step_by(2).map(|i| u8::from_str_radix(&clean[i..i + 2], 16).expect("hex")).collect()
    }

    /// RFC 7518 Appendix B.3, AES_256_CBC_HMAC_SHA_512.
    #[test]
    fn rfc_7518_b3_test_vector() -> Result<(), JweError> {
        let key: Vec<u8> = (0u8..64).collect();
        let plaintext = b"A cipher system must not be required to be secret, and it must be able to fall into the hands of the enemy without inconvenience";
        let iv: [u8; 16] = hex("1a f3 8c 2d c2 b9 6f fd d8 66 94 09 23 41 bc 04").try_into().expect("iv");
        let aad = b"The second principle of Auguste Kerckhoffs";
        let (ciphertext, tag) = seal(&key, aad, &iv, plaintext)?;
        assert_eq!(
            ciphertext,
            hex("4a ff aa ad b7 8c 31 c5 da 4b 1b 59 0d 10 ff bd 3d d8 d5 d3 02 42 35 26 91 2d a0 37 ec bc c7 bd
                 82 2c 30 1d d6 7c 37 3b cc b5 84 ad 3e 92 79 c2 e6 d1 2a 13 74 b7 7f 07 75 53 df 82 94 10 44 6b
                 36 eb d9 70 66 29 6a e6 42 7e a7 5c 2e 08 46 a1 1a 09 cc f5 37 0d c8 0b fe cb ad 28 c7 3f 09 b3
                 a3 b7 5e 66 2a 25 94 41 0a e4 96 b2 e2 e6 60 9e 31 e6 e0 2c c8 37 f0 53 d2 1f 37 ff 4f 51 95 0b
                 be 26 38 d0 9d d7 a4 93 09 30 80 6d 07 03 b1 f6")
        );
        assert_eq!(
            tag.to_vec(),
            hex("4d d3 b4 c0 88 a7 f4 5c 21 68 39 64 5b 20 12 bf 2e 62 69 a8 c5 6a 81 6d bc 1b 26 77 61 95 5b c5")
        );
        assert_eq!(open(&key, aad, &iv, &ciphertext, &tag)?, plaintext.to_vec());
        Ok(())
    }

    #[test]
    fn compact_tokens_round_trip_and_refuse_other_keys() -> Result<(), JweError> {
        let secret = "a".repeat(64);
        let token = encrypt(secret.as_bytes(), br#"{"sessionId":"s1"}"#)?;
        assert_eq!(token.split('.').count(), 5);
        assert!(token.starts_with("eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2Q0JDLUhTNTEyIn0.."));
        assert_eq!(decrypt(secret.as_bytes(), &token)?, br#"{"sessionId":"s1"}"#.to_vec());
        assert_eq!(decrypt("b".repeat(64).as_bytes(), &token), Err(JweError::Authentication));
        assert_eq!(encrypt(b"short", b"x"), Err(JweError::KeyLength));
        let mut altered: Vec<String> = token.split('.').map(str::to_owned).collect();
        altered[3] = URL_SAFE_NO_PAD.encode(b"0123456789abcdef");
        assert_eq!(decrypt(secret.as_bytes(), &altered.join(".")), Err(JweError::Authentication));
        for garbage in ["", "a.b.c", "....", &token.replace("..", ".x.")] {
            assert!(decrypt(secret.as_bytes(), garbage).is_err(), "{garbage}");
        }
        Ok(())
    }
}
