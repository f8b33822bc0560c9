use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::{KeyError, MasterKey, SigningAlgorithm, SigningKey};
use crate::clock::Timestamp;
use crate::store::SigningKeyRecord;

/// How keys are rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPolicy {
    /// Algorithm of new keys.
    pub algorithm: SigningAlgorithm,
    /// A new key is made when the newest one has signed for this long.
    pub rotation_interval: Duration,
    /// A new key is published this long before it signs, so verifiers that cache the JWKS know it.
    pub publish_lead: Duration,
    /// A retired key stays published this long after its successor starts signing (at least the
    /// lifetime of the longest token it signed).
    pub retain_after_retirement: Duration,
}

/// Where a key stands in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum KeyState {
    /// Published, not signing yet.
    Pending,
    /// Signs new tokens.
    Signing,
    /// Replaced; still published so its tokens verify.
    Verifying,
    /// No longer published.
    Retired,
}

/// A key's state, for listings.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyStatus {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub algorithm: SigningAlgorithm,
    /// State now.
    pub state: KeyState,
    /// Creation (and publication) time.
    pub created: Timestamp,
    /// Start of signing.
    pub signs_from: Timestamp,
    /// End of signing, when a successor exists.
    pub signs_until: Option<Timestamp>,
    /// End of publication, when a successor exists.
    pub published_until: Option<Timestamp>,
}

#[derive(Debug)]
struct Entry {
    record: SigningKeyRecord,
    key: Arc<SigningKey>,
}

/// The signing keys, opened (private keys unsealed and parsed once).
#[derive(Debug, Default)]
pub struct KeyRing {
    entries: Vec<Entry>,
}

impl KeyRing {
    /// Opens stored keys with the master key.
    ///
    /// # Errors
    /// [`KeyError::Unseal`] when a key was sealed under another master key, or
    /// [`KeyError::InvalidPrivateKey`] when a stored key is corrupt.
    pub fn open(mut records: Vec<SigningKeyRecord>, master: &MasterKey) -> Result<Self, KeyError> {
        records.sort_by(|a, b| (a.signs_from, &a.kid).cmp(&(b.signs_from, &b.kid)));
        let entries = records
            .into_iter()
            .map(|record| {
                let pkcs8 = master.open(record.kid.as_bytes(), &record.sealed_private_key)?;
                let key = SigningKey::from_pkcs8(record.algorithm, &record.kid, &pkcs8)?;
                Ok(Entry { record, key: Arc::new(key) })
            })
            .collect::<Result<Vec<_>, KeyError>>()?;
        Ok(Self { entries })
    }

    /// Whether the ring has no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The id of the newest key: the precondition of the next rotation.
    #[must_use]
    pub fn newest_kid(&self) -> Option<&str> {
        self.entries.last().map(|e| e.record.kid.as_str())
    }

    /// The id of the newest key of `algorithm`.
    #[must_use]
    pub fn newest_kid_of(&self, algorithm: SigningAlgorithm) -> Option<&str> {
        self.family(algorithm).next_back().map(|e| e.record.kid.as_str())
    }

    /// The keys of one algorithm, oldest first. Each algorithm is a family with its own rotation: the
    /// session keys and the ID-token keys can differ (OIDC requires RS256 for ID tokens).
    fn family(&self, algorithm: SigningAlgorithm) -> impl DoubleEndedIterator<Item = &Entry> + Clone {
        self.entries.iter().filter(move |e| e.record.algorithm == algorithm)
    }

    /// The key of `algorithm` that signs at `now`: the newest whose signing has started.
    #[must_use]
    pub fn signer(&self, now: Timestamp, algorithm: SigningAlgorithm) -> Option<&Arc<SigningKey>> {
        self.family(algorithm).rev().find(|e| e.record.signs_from <= now).map(|e| &e.key)
    }

    /// The published key of the policy's algorithm with this id, for verification.
    #[must_use]
    pub fn verifier(&self, kid: &str, now: Timestamp, policy: &KeyPolicy) -> Option<&Arc<SigningKey>> {
        self.statuses(now, policy)
            .zip(self.family(policy.algorithm))
            .find(|(status, entry)| status.state != KeyState::Retired && entry.record.kid == kid)
            .map(|(_, entry)| &entry.key)
    }

    /// Whether a new key of the policy's algorithm should be made (always, when it has none).
    #[must_use]
    pub fn rotation_due(&self, now: Timestamp, policy: &KeyPolicy) -> bool {
        self.family(policy.algorithm)
            .next_back()
            .is_none_or(|newest| newest.record.signs_from.plus(policy.rotation_interval) <= now)
    }

    /// Every key of the policy's algorithm with its state, oldest first.
    pub fn statuses<'a>(&'a self, now: Timestamp, policy: &'a KeyPolicy) -> impl Iterator<Item = KeyStatus> + 'a {
        let signing = self.signer(now, policy.algorithm).map(|k| k.kid().to_owned());
        let family: Vec<&Entry> = self.family(policy.algorithm).collect();
        family.clone().into_iter().enumerate().map(move |(i, entry)| {
            let signs_until = family.get(i + 1).map(|next| next.record.signs_from);
            let published_until = signs_until.map(|t| t.plus(policy.retain_after_retirement));
            let state = if signing.as_deref() == Some(entry.record.kid.as_str()) {
                KeyState::Signing
            } else if entry.record.signs_from > now {
                KeyState::Pending
            } else if published_until.is_some_and(|until| until <= now) {
                KeyState::Retired
            } else {
                KeyState::Verifying
            };
            KeyStatus {
                kid: entry.record.kid.clone(),
                algorithm: entry.record.algorithm,
                state,
                created: entry.record.created_at,
                signs_from: entry.record.signs_from,
                signs_until,
                published_until,
            }
        })
    }

    /// The JWKS document: every key that is not retired.
    #[must_use]
    pub fn jwks(&self, now: Timestamp, policy: &KeyPolicy) -> Value {
        let keys: Vec<Value> = self
            .statuses(now, policy)
            .zip(self.family(policy.algorithm))
            .filter(|(status, _)| status.state != KeyState::Retired)
            .map(|(_, entry)| entry.key.public_jwk().clone())
            .collect();
        json!({ "keys": keys })
    }

    /// Makes the record of the next key of the policy's algorithm: it signs at once when it is the first
    /// of its algorithm, otherwise after
    /// `publish_lead`. Insert it with [`crate::store::SigningKeyStore::insert_signing_key`], passing
    /// [`newest_kid`](Self::newest_kid) as the precondition.
    ///
    /// # Errors
    /// If key generation or sealing fails.
    pub fn next_key(
        &self,
        now: Timestamp,
        policy: &KeyPolicy,
        master: &MasterKey,
    ) -> Result<SigningKeyRecord, KeyError> {
        // Key ids carry the creation time; keep them strictly increasing even within one millisecond.
        let newest_millis = self
            .entries
            .iter()
            .filter_map(|e| e.record.kid.strip_prefix("d-").and_then(|m| m.parse::<i64>().ok()))
            .max();
        let millis = newest_millis.map_or(now.unix_millis(), |m| m.saturating_add(1).max(now.unix_millis()));
        let kid = format!("d-{millis}");
        let (key, pkcs8) = SigningKey::generate(policy.algorithm, &kid)?;
        let first_of_family = self.family(policy.algorithm).next().is_none();
        let signs_from = if first_of_family { now } else { now.plus(policy.publish_lead) };
        Ok(SigningKeyRecord {
            sealed_private_key: master.seal(kid.as_bytes(), &pkcs8)?,
            public_jwk: key.public_jwk().to_string(),
            kid,
            algorithm: policy.algorithm,
            created_at: now,
            signs_from,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn policy() -> KeyPolicy {
        KeyPolicy {
            algorithm: SigningAlgorithm::EdDSA,
            rotation_interval: MINUTE * 60,
            publish_lead: MINUTE,
            retain_after_retirement: MINUTE * 10,
        }
    }

    fn at(minutes: u64) -> Timestamp {
        Timestamp::from_unix_millis(1_700_000_000_000).plus(MINUTE * u32::try_from(minutes).unwrap_or(0))
    }

    #[test]
    fn rotation_publishes_before_signing_and_retires_after_overlap() -> Result<(), KeyError> {
        let (master, _) = MasterKey::generate()?;
        let policy = policy();
        let empty = KeyRing::default();
        assert!(empty.rotation_due(at(0), &policy));
        let first = empty.next_key(at(0), &policy, &master)?;
        assert_eq!(first.signs_from, at(0), "the first key signs at once");

        let ring = KeyRing::open(vec![first.clone()], &master)?;
        assert!(!ring.rotation_due(at(59), &policy));
        assert!(ring.rotation_due(at(60), &policy));
        let second = ring.next_key(at(60), &policy, &master)?;
        assert_eq!(second.signs_from, at(61));

        let ring = KeyRing::open(vec![second.clone(), first.clone()], &master)?;
        assert_eq!(ring.newest_kid(), Some(second.kid.as_str()));
        // Published but not yet signing.
        assert_eq!(ring.signer(at(60), SigningAlgorithm::EdDSA).map(|k| k.kid().to_owned()), Some(first.kid.clone()));
        assert_eq!(ring.jwks(at(60), &policy)["keys"].as_array().map(Vec::len), Some(2));
        // Signing switches; the old key still verifies during the overlap, then is retired.
        assert_eq!(ring.signer(at(61), SigningAlgorithm::EdDSA).map(|k| k.kid().to_owned()), Some(second.kid.clone()));
        assert!(ring.verifier(&first.kid, at(70), &policy).is_some());
        assert!(ring.verifier(&first.kid, at(71), &policy).is_none());
        assert_eq!(ring.jwks(at(71), &policy)["keys"][0]["kid"], second.kid.as_str());
        let states: Vec<KeyState> = ring.statuses(at(71), &policy).map(|s| s.state).collect();
        assert_eq!(states, [KeyState::Retired, KeyState::Signing]);
        Ok(())
    }

    #[test]
    fn algorithms_rotate_as_separate_families() -> Result<(), KeyError> {
        let (master, _) = MasterKey::generate()?;
        let eddsa = policy();
        let rs256 = KeyPolicy { algorithm: SigningAlgorithm::RS256, ..policy() };
        let first = KeyRing::default().next_key(at(0), &eddsa, &master)?;
        let ring = KeyRing::open(vec![first.clone()], &master)?;
        assert!(ring.rotation_due(at(1), &rs256), "an algorithm without keys needs one");
        let rsa = ring.next_key(at(1), &rs256, &master)?;
        assert_eq!(rsa.signs_from, at(1), "the first key of an algorithm signs at once");
        let ring = KeyRing::open(vec![first.clone(), rsa.clone()], &master)?;
        assert_eq!(ring.newest_kid(), Some(rsa.kid.as_str()), "the rotation precondition spans every family");
        assert_eq!(ring.signer(at(2), SigningAlgorithm::EdDSA).map(|k| k.kid().to_owned()), Some(first.kid.clone()));
        assert_eq!(ring.signer(at(2), SigningAlgorithm::RS256).map(|k| k.kid().to_owned()), Some(rsa.kid.clone()));
        assert!(!ring.rotation_due(at(2), &eddsa) && !ring.rotation_due(at(2), &rs256));
        assert_eq!(ring.jwks(at(2), &rs256)["keys"][0]["kty"], "RSA");
        assert_eq!(ring.jwks(at(2), &eddsa)["keys"].as_array().map(Vec::len), Some(1));
        assert!(ring.verifier(&rsa.kid, at(2), &eddsa).is_none(), "a family verifies only its own keys");
        // A new EdDSA key retires only the older EdDSA key, never the RSA one.
        let second = ring.next_key(at(60), &eddsa, &master)?;
        let ring = KeyRing::open(vec![first.clone(), rsa.clone(), second.clone()], &master)?;
        let eddsa_states: Vec<KeyState> = ring.statuses(at(80), &eddsa).map(|s| s.state).collect();
        assert_eq!(eddsa_states, [KeyState::Retired, KeyState::Signing]);
        let rsa_states: Vec<KeyState> = ring.statuses(at(80), &rs256).map(|s| s.state).collect();
        assert_eq!(rsa_states, [KeyState::Signing]);
        Ok(())
    }

    #[test]
    fn a_ring_sealed_under_another_master_key_does_not_open() -> Result<(), KeyError> {
        let (master, _) = MasterKey::generate()?;
        let (other, _) = MasterKey::generate()?;
        let record = KeyRing::default().next_key(at(0), &policy(), &master)?;
        assert_eq!(KeyRing::open(vec![record], &other).map(|_| ()), Err(KeyError::Unseal));
        Ok(())
    }

    #[test]
    fn key_ids_increase_within_one_millisecond() -> Result<(), KeyError> {
        let (master, _) = MasterKey::generate()?;
        let first = KeyRing::default().next_key(at(0), &policy(), &master)?;
        let ring = KeyRing::open(vec![first.clone()], &master)?;
        let second = ring.next_key(at(0), &policy(), &master)?;
        assert!(second.kid > first.kid, "{} then {}", first.kid, second.kid);
        Ok(())
    }
}
