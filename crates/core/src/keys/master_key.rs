use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::KeyError;

/// The key that seals secrets at rest (signing keys, connector credentials): AES-256-GCM.
pub struct MasterKey {
    cipher: LessSafeKey,
    raw: [u8; MASTER_KEY_LEN],
}

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;

impl MasterKey {
    /// A fresh random key, returned with its base64 text for storing.
    ///
    /// # Errors
    /// If the system random source fails.
    pub fn generate() -> Result<(Self, String), KeyError> {
        let mut bytes = [0u8; MASTER_KEY_LEN];
        SystemRandom::new().fill(&mut bytes).map_err(|_| KeyError::Random)?;
        let text = STANDARD.encode(bytes);
        Ok((Self::from_bytes(&bytes)?, text))
    }

    /// Parses the base64 text of 32 bytes.
    ///
    /// # Errors
    /// [`KeyError::InvalidMasterKey`] if the text is not base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| KeyError::InvalidMasterKey)?;
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != MASTER_KEY_LEN {
            return Err(KeyError::InvalidMasterKey);
        }
        let raw: [u8; MASTER_KEY_LEN] = bytes.try_into().map_err(|_| KeyError::InvalidMasterKey)?;
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| KeyError::InvalidMasterKey)?;
        Ok(Self { cipher: LessSafeKey::new(key), raw })
    }

    /// A 32-byte key for one purpose (`label`), derived with HKDF-SHA256, so each use of the master key
    /// has its own key.
    #[must_use]
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"portcullis master key v1");
        let prk = salt.extract(&self.raw);
        let info = [label.as_bytes()];
        let mut out = [0u8; 32];
        // Expanding 32 bytes with SHA-256 cannot fail (the limit is 255 × 32).
        if let Ok(okm) = prk.expand(&info, hkdf::HKDF_SHA256) {
            let _ = okm.fill(&mut out);
        }
        out
    }

    /// Encrypts `plaintext`, bound to `context` (for example the key id) so a sealed value cannot be moved
    /// to another record. Output: nonce ‖ ciphertext ‖ tag.
    ///
    /// # Errors
    /// If the system random source or the cipher fails.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| KeyError::Random)?;
        let mut buffer = plaintext.to_vec();
        self.cipher
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut buffer)
            .map_err(|_| KeyError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        Ok(out)
    }

    /// Decrypts what [`seal`](Self::seal) produced with the same `context`.
    ///
    /// # Errors
    /// [`KeyError::Unseal`] if the value was sealed under another key or context, or was altered.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        if sealed.len() < NONCE_LEN {
            return Err(KeyError::Unseal);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Unseal)?;
        let mut buffer = ciphertext.to_vec();
        let plain = self.cipher.open_in_place(nonce, Aad::from(context), &mut buffer).map_err(|_| KeyError::Unseal)?;
        Ok(plain.to_vec())
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_binds_context() -> Result<(), KeyError> {
        let (key, text) = MasterKey::generate()?;
        let sealed = key.seal(b"kid-1", b"secret")?;
        assert_ne!(&sealed[NONCE_LEN..], b"secret");
        assert_eq!(key.open(b"kid-1", &sealed)?, b"secret");
        assert_eq!(key.open(b"kid-2", &sealed), Err(KeyError::Unseal));
        let same = MasterKey::from_base64(&text)?;
        assert_eq!(same.open(b"kid-1", &sealed)?, b"secret");
        let (other, _) = MasterKey::generate()?;
        assert_eq!(other.open(b"kid-1", &sealed), Err(KeyError::Unseal));
        Ok(())
    }

    #[test]
    fn rejects_wrong_length_and_garbage() {
        assert_eq!(MasterKey::from_base64("c2hvcnQ=").map(|_| ()), Err(KeyError::InvalidMasterKey));
        assert_eq!(MasterKey::from_base64("!!!").map(|_| ()), Err(KeyError::InvalidMasterKey));
        assert!(format!("{:?}", MasterKey::generate().map(|k| k.0)).contains("redacted"));
    }

    #[test]
    fn derived_keys_differ_by_label_and_are_stable() -> Result<(), KeyError> {
        let (key, text) = MasterKey::generate()?;
        assert_ne!(key.derive("a"), key.derive("b"));
        assert_eq!(key.derive("a"), MasterKey::from_base64(&text)?.derive("a"));
        Ok(())
    }
}
