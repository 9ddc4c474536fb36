//! The secret cipher: AES-256-GCM for secrets at rest (Twilio auth tokens, API key secrets).
//!
//! Every value gets a fresh random 96-bit nonce. The stored text is `v1:` followed by the
//! standard base64 of `nonce || ciphertext-with-tag`, so an encrypted value is told apart from a
//! plaintext one by its prefix alone ([`is_encrypted`]), and a future format can take `v2:`.
//!
//! Keys are 32 random bytes, configured as base64 ([`SecretCipher::generate_key`] makes one).
//! Rotation: the cipher encrypts with its current key and decrypts with the current key or any of
//! the old keys it was given; `Store::reencrypt_secrets` then moves every stored secret to the
//! current key, after which the old keys can be dropped from the configuration.
//!
//! Key material never appears in `Debug` output, errors or logs.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The prefix of every value this cipher writes.
pub const FORMAT_PREFIX: &str = "v1:";

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;

/// Whether `stored` is in the cipher's encrypted format (it may still fail to decrypt).
pub fn is_encrypted(stored: &str) -> bool {
    stored.starts_with(FORMAT_PREFIX)
}

/// Why a key could not be loaded or a value could not be decrypted. Never contains key material
/// or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    /// No current key was configured.
    #[error("no encryption key is configured: set a 32-byte key, base64-encoded")]
    MissingKey,
    /// A configured key is not base64 of exactly 32 bytes.
    #[error("encryption key {which} is invalid: {reason}")]
    InvalidKey {
        /// Which key: `current` or `old #N`.
        which: String,
        /// What is wrong with it (never the key itself).
        reason: String,
    },
    /// The value is not in the `v1:` format (it may be plaintext).
    #[error("the value is not encrypted (expected the 'v1:' format)")]
    NotEncrypted,
    /// The value has the `v1:` prefix but is not valid base64 or is too short.
    #[error("the encrypted value is malformed: {0}")]
    Malformed(String),
    /// No configured key decrypts the value: it was encrypted with another key, or tampered with.
    #[error("no configured key decrypts the value (wrong key, or the value was altered)")]
    Undecryptable,
    /// The decrypted bytes are not UTF-8 text.
    #[error("the decrypted value is not UTF-8 text")]
    NotText,
    /// Encryption itself failed (only for absurdly large values).
    #[error("encryption failed")]
    EncryptFailed,
}

/// Which key decrypted a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsed {
    /// The current key: the value needs no re-encryption.
    Current,
    /// One of the old keys (its position in the list): the value should be re-encrypted.
    Old(usize),
}

/// AES-256-GCM with a current key and optional old keys for decryption during rotation.
/// Cheap to clone; shares nothing mutable.
#[derive(Clone)]
pub struct SecretCipher {
    current: Aes256Gcm,
    old: Vec<Aes256Gcm>,
}

impl std::fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCipher")
            .field("current", &"<redacted>")
            .field("old_keys", &self.old.len())
            .finish()
    }
}

fn load_key(which: String, encoded: &str) -> Result<Aes256Gcm, CipherError> {
    let bytes = BASE64
        .decode(encoded.trim())
        .map_err(|_| CipherError::InvalidKey {
            which: which.clone(),
            reason: "not valid base64".into(),
        })?;
    if bytes.len() != KEY_LEN {
        return Err(CipherError::InvalidKey {
            which,
            reason: format!("expected {KEY_LEN} bytes, got {}", bytes.len()),
        });
    }
    Aes256Gcm::new_from_slice(&bytes).map_err(|_| CipherError::InvalidKey {
        which,
        reason: format!("expected {KEY_LEN} bytes"),
    })
}

impl SecretCipher {
    /// Loads the current key and any old keys, each base64 of 32 bytes.
    ///
    /// # Errors
    /// [`CipherError::MissingKey`] when `current` is empty; [`CipherError::InvalidKey`] naming
    /// the first key that is not base64 of 32 bytes.
    pub fn from_base64_keys<S: AsRef<str>>(current: &str, old: &[S]) -> Result<Self, CipherError> {
        if current.trim().is_empty() {
            return Err(CipherError::MissingKey);
        }
        let current = load_key("current".into(), current)?;
        let old = old
            .iter()
            .enumerate()
            .map(|(index, key)| load_key(format!("old #{}", index + 1), key.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { current, old })
    }

    /// A fresh random key, base64-encoded, for configuration.
    pub fn generate_key() -> String {
        BASE64.encode(rand::random::<[u8; KEY_LEN]>())
    }

    /// Encrypts `plaintext` with the current key and a fresh random nonce.
    ///
    /// # Errors
    /// [`CipherError::EncryptFailed`] only for values beyond AES-GCM's size limit.
    pub fn encrypt(&self, plaintext: &str) -> Result<String, CipherError> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = Nonce::from(nonce_bytes);
        let ciphertext = self
            .current
            .encrypt(&nonce, plaintext.as_bytes())
            .map_err(|_| CipherError::EncryptFailed)?;
        let mut packed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        packed.extend_from_slice(&nonce_bytes);
        packed.extend_from_slice(&ciphertext);
        Ok(format!("{FORMAT_PREFIX}{}", BASE64.encode(packed)))
    }

    /// Decrypts a `v1:` value with the current key, then each old key.
    ///
    /// # Errors
    /// [`CipherError::NotEncrypted`] for a value without the prefix (plaintext is never passed
    /// through silently); [`CipherError::Malformed`], [`CipherError::Undecryptable`] or
    /// [`CipherError::NotText`] otherwise.
    pub fn decrypt(&self, stored: &str) -> Result<String, CipherError> {
        self.decrypt_with_key(stored)
            .map(|(plaintext, _)| plaintext)
    }

    /// Like [`SecretCipher::decrypt`], also saying which key worked.
    ///
    /// # Errors
    /// As [`SecretCipher::decrypt`].
    pub fn decrypt_with_key(&self, stored: &str) -> Result<(String, KeyUsed), CipherError> {
        let encoded = stored
            .strip_prefix(FORMAT_PREFIX)
            .ok_or(CipherError::NotEncrypted)?;
        let packed = BASE64
            .decode(encoded)
            .map_err(|_| CipherError::Malformed("not valid base64".into()))?;
        if packed.len() < NONCE_LEN + TAG_LEN {
            return Err(CipherError::Malformed(format!(
                "{} bytes is shorter than a nonce and a tag",
                packed.len()
            )));
        }
        let (nonce_bytes, ciphertext) = packed.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce_bytes)
            .map_err(|_| CipherError::Malformed("bad nonce length".into()))?;
        let keys = std::iter::once((KeyUsed::Current, &self.current)).chain(
            self.old
                .iter()
                .enumerate()
                .map(|(index, key)| (KeyUsed::Old(index), key)),
        );
        for (used, key) in keys {
            if let Ok(bytes) = key.decrypt(&nonce, ciphertext) {
                let text = String::from_utf8(bytes).map_err(|_| CipherError::NotText)?;
                return Ok((text, used));
            }
        }
        Err(CipherError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(current: &str, old: &[&str]) -> SecretCipher {
        SecretCipher::from_base64_keys(current, old).expect("valid keys")
    }

    #[test]
    fn a_value_round_trips_and_two_encryptions_differ_by_nonce() {
        let c = cipher(&SecretCipher::generate_key(), &[]);
        let a = c.encrypt("token-123").expect("encrypts");
        let b = c.encrypt("token-123").expect("encrypts");
        assert!(is_encrypted(&a), "{a}");
        assert_ne!(a, b, "each value gets its own nonce");
        assert_eq!(c.decrypt(&a).as_deref(), Ok("token-123"));
        assert!(
            !a.contains("token-123"),
            "ciphertext must not show the secret"
        );
    }

    #[test]
    fn bad_keys_are_refused_with_a_reason_and_without_the_key() {
        let cases = [
            ("", CipherError::MissingKey, "empty"),
            (
                "not base64!!",
                CipherError::InvalidKey {
                    which: "current".into(),
                    reason: "not valid base64".into(),
                },
                "not base64",
            ),
            (
                "AAAA",
                CipherError::InvalidKey {
                    which: "current".into(),
                    reason: "expected 32 bytes, got 3".into(),
                },
                "too short",
            ),
        ];
        for (key, expected, why) in cases {
            let err = SecretCipher::from_base64_keys::<&str>(key, &[]).expect_err(why);
            assert_eq!(err, expected, "{why}");
        }
        let err = SecretCipher::from_base64_keys(&SecretCipher::generate_key(), &["AAAA"])
            .expect_err("bad old key");
        assert!(err.to_string().contains("old #1"), "{err}");
    }

    #[test]
    fn plaintext_tampering_and_wrong_keys_are_errors_never_passthrough() {
        let c = cipher(&SecretCipher::generate_key(), &[]);
        let other = cipher(&SecretCipher::generate_key(), &[]);
        let sealed = c.encrypt("secret").expect("encrypts");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        let cases: [(&SecretCipher, &str, CipherError, &str); 4] = [
            (&c, "secret", CipherError::NotEncrypted, "plaintext"),
            (
                &c,
                &tampered,
                CipherError::Undecryptable,
                "one byte changed",
            ),
            (&other, &sealed, CipherError::Undecryptable, "wrong key"),
            (
                &c,
                "v1:AAAA",
                CipherError::Malformed("3 bytes is shorter than a nonce and a tag".into()),
                "truncated",
            ),
        ];
        for (cipher, value, expected, why) in cases {
            assert_eq!(cipher.decrypt(value), Err(expected), "{why}");
        }
    }

    #[test]
    fn old_keys_still_decrypt_and_report_that_they_were_used() {
        let old_key = SecretCipher::generate_key();
        let before = cipher(&old_key, &[]);
        let sealed = before.encrypt("secret").expect("encrypts");
        let after = cipher(&SecretCipher::generate_key(), &[&old_key]);
        assert_eq!(
            after.decrypt_with_key(&sealed),
            Ok(("secret".to_owned(), KeyUsed::Old(0)))
        );
        let resealed = after.encrypt("secret").expect("encrypts");
        assert_eq!(
            after.decrypt_with_key(&resealed),
            Ok(("secret".to_owned(), KeyUsed::Current))
        );
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let key = SecretCipher::generate_key();
        let shown = format!("{:?}", cipher(&key, &[]));
        assert!(!shown.contains(&key), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
}
