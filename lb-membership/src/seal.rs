//! Authenticated encryption of membership datagrams.
//!
//! Every datagram is sealed with ChaCha20-Poly1305. The 256-bit key is derived with
//! HKDF-SHA256 from the memberlist Secret, so any Secret length works and the same Secret
//! gives the same key on every node. A datagram is
//!
//! ```text
//! version (1 octet, 1) | nonce (12 octets, random) | ciphertext | tag (16 octets)
//! ```
//!
//! The version octet is authenticated as associated data. A speaker without the key can
//! neither read a datagram nor forge one that another speaker accepts: it cannot join, and
//! it cannot declare anyone dead. Replays of captured datagrams are accepted by the AEAD;
//! SWIM's incarnation numbers make an old message about a member lose to newer ones.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

/// The format version this code writes and reads.
const VERSION: u8 = 1;
/// HKDF salt and info: the key is bound to this use of the Secret.
const SALT: &[u8] = b"lb-k8s memberlist";
const INFO: &[u8] = b"chacha20-poly1305 datagram key v1";
/// Octets a sealed datagram adds to its plaintext.
pub const OVERHEAD: usize = 1 + NONCE_LEN + 16;

/// Why a datagram was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Shorter than the header and tag.
    #[error("datagram too short ({0} octets)")]
    TooShort(usize),
    /// Written by another format version.
    #[error("unknown datagram version {0}")]
    Version(u8),
    /// Authentication failed: another key, or tampered with.
    #[error("authentication failed (wrong key or tampered datagram)")]
    Authentication,
}

/// Why the key could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The Secret is empty.
    #[error("the membership secret is empty")]
    Empty,
    /// The crypto library refused to derive or load the key (not expected to happen).
    #[error("the membership key could not be derived")]
    Derive,
}

/// Seals and opens datagrams with one key.
pub struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer { .. }")
    }
}

struct KeyLen;

impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        CHACHA20_POLY1305.key_len()
    }
}

impl Sealer {
    /// Derives the datagram key from the Secret's bytes (surrounding whitespace ignored, so
    /// a file with a trailing newline gives the same key).
    pub fn from_secret(secret: &[u8]) -> Result<Self, KeyError> {
        let secret = secret.trim_ascii();
        if secret.is_empty() {
            return Err(KeyError::Empty);
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(secret);
        let mut key = [0u8; 32];
        let info = [INFO];
        // These steps fail only for a length mismatch, which KeyLen rules out.
        let okm = prk.expand(&info, KeyLen).map_err(|_| KeyError::Derive)?;
        okm.fill(&mut key).map_err(|_| KeyError::Derive)?;
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &key).map_err(|_| KeyError::Derive)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        })
    }

    /// Seals `plaintext` into a datagram. `None` only if the system's random source fails.
    pub fn seal(&self, plaintext: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from([VERSION]),
                &mut body,
            )
            .ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    /// The nonce of a datagram in our format (right version, long enough), sealed with any
    /// key: what a mismatch notice echoes.
    pub fn nonce_of(datagram: &[u8]) -> Option<[u8; NONCE_LEN]> {
        if datagram.len() < OVERHEAD || datagram.first() != Some(&VERSION) {
            return None;
        }
        datagram.get(1..=NONCE_LEN)?.try_into().ok()
    }

    /// Opens a datagram, returning its plaintext.
    pub fn open(&self, datagram: &[u8]) -> Result<Vec<u8>, OpenError> {
        if datagram.len() < OVERHEAD {
            return Err(OpenError::TooShort(datagram.len()));
        }
        let (header, sealed) = datagram.split_at(1 + NONCE_LEN);
        let (&version, nonce) = header.split_first().ok_or(OpenError::TooShort(0))?;
        if version != VERSION {
            return Err(OpenError::Version(version));
        }
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Authentication)?;
        let mut body = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from([version]), &mut body)
            .map_err(|_| OpenError::Authentication)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn round_trip_and_overhead() {
        let s = Sealer::from_secret(b"secret").unwrap();
        let d = s.seal(b"hello").unwrap();
        assert_eq!(d.len(), 5 + OVERHEAD);
        assert_eq!(s.open(&d).unwrap(), b"hello");
        // Random nonces: the same plaintext never gives the same datagram.
        assert_ne!(s.seal(b"hello").unwrap(), d);
        // Trailing whitespace of a Secret file does not change the key.
        let t = Sealer::from_secret(b"  secret\n").unwrap();
        assert_eq!(t.open(&d).unwrap(), b"hello");
    }

    #[test]
    fn wrong_key_and_tampering_are_refused() {
        let s = Sealer::from_secret(b"secret").unwrap();
        let other = Sealer::from_secret(b"secreT").unwrap();
        let d = s.seal(b"member x is down").unwrap();
        assert_eq!(other.open(&d), Err(OpenError::Authentication));
        for i in 0..d.len() {
            let mut bad = d.clone();
            bad[i] ^= 0x01;
            assert!(s.open(&bad).is_err(), "flipped octet {i} accepted");
        }
        assert_eq!(
            s.open(&d[..OVERHEAD - 1]),
            Err(OpenError::TooShort(OVERHEAD - 1))
        );
        let mut v2 = d;
        v2[0] = 2;
        assert_eq!(s.open(&v2), Err(OpenError::Version(2)));
        assert_eq!(Sealer::from_secret(b" \n").unwrap_err(), KeyError::Empty);
    }
}
