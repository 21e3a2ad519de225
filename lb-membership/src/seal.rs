//! Authenticated encryption of membership datagrams.
//!
//! Every datagram is sealed with ChaCha20-Poly1305. The 256-bit key is derived with
//! HKDF-SHA256 from the memberlist Secret, so any Secret length works and the same Secret
//! gives the same key on every node. A datagram is
//!
//! ```text
//! version (1 octet) | nonce (12 octets, random) | ciphertext | tag (16 octets)
//! ```
//!
//! The version octet is authenticated as associated data. A speaker without the key can
//! neither read a datagram nor forge one that another speaker accepts: it cannot join, and
//! it cannot declare anyone dead.
//!
//! In version 2 the plaintext starts with a [`Stamp`]: the sender's random incarnation id, a
//! counter that grows with every datagram it seals, and its clock. They are sealed with the
//! payload, so only a key holder can write them, and they let a receiver refuse a captured
//! datagram played again ([`crate::replay`]). Version 1 has no stamp; it is what speakers
//! without replay protection write, read only in the upgrade mode ([`crate::WireFormat::Upgrade`]).

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

/// The format without a stamp (speakers without replay protection).
const VERSION_1: u8 = 1;
/// The format with a [`Stamp`].
const VERSION_2: u8 = 2;
/// HKDF salt and info: the key is bound to this use of the Secret.
const SALT: &[u8] = b"lb-k8s memberlist";
const INFO: &[u8] = b"chacha20-poly1305 datagram key v1";
/// Octets a sealed version-1 datagram adds to its plaintext.
pub const OVERHEAD: usize = 1 + NONCE_LEN + 16;
/// Octets of a [`Stamp`].
pub(crate) const STAMP_LEN: usize = 24;
/// Octets a sealed version-2 datagram adds to its payload: the header, tag and stamp.
pub const STAMPED_OVERHEAD: usize = OVERHEAD + STAMP_LEN;

/// Who sealed a version-2 datagram, its place in the sender's sequence and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The sender's incarnation: random, drawn once per start.
    pub sender: u64,
    /// One more than the previous datagram this incarnation sealed (the first is 1).
    pub counter: u64,
    /// The sender's clock when it sealed the datagram, in milliseconds since the epoch.
    pub sent_at_ms: u64,
}

impl Stamp {
    fn encode(&self) -> [u8; STAMP_LEN] {
        let mut out = [0u8; STAMP_LEN];
        out[..8].copy_from_slice(&self.sender.to_be_bytes());
        out[8..16].copy_from_slice(&self.counter.to_be_bytes());
        out[16..].copy_from_slice(&self.sent_at_ms.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Option<(Self, &[u8])> {
        let (head, rest) = b.split_first_chunk::<STAMP_LEN>()?;
        let word = |i: usize| -> Option<u64> {
            Some(u64::from_be_bytes(head.get(i..i + 8)?.try_into().ok()?))
        };
        Some((
            Self {
                sender: word(0)?,
                counter: word(8)?,
                sent_at_ms: word(16)?,
            },
            rest,
        ))
    }
}

/// An opened datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The stamp of a version-2 datagram; `None` for version 1.
    pub stamp: Option<Stamp>,
    /// What the sender sealed (after the stamp).
    pub payload: Vec<u8>,
}

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

    /// Seals `payload` into a version-1 datagram (no stamp: what speakers without replay protection read).
    /// `None` only if the system's random source fails.
    pub fn seal(&self, payload: &[u8]) -> Option<Vec<u8>> {
        self.seal_version(VERSION_1, &[], payload)
    }

    /// Seals `stamp` and `payload` into a version-2 datagram. `None` only if the system's
    /// random source fails.
    pub fn seal_stamped(&self, stamp: Stamp, payload: &[u8]) -> Option<Vec<u8>> {
        self.seal_version(VERSION_2, &stamp.encode(), payload)
    }

    fn seal_version(&self, version: u8, stamp: &[u8], payload: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut body = Vec::with_capacity(stamp.len() + payload.len() + OVERHEAD);
        body.extend_from_slice(stamp);
        body.extend_from_slice(payload);
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from([version]),
                &mut body,
            )
            .ok()?;
        let mut out = Vec::with_capacity(body.len() + 1 + NONCE_LEN);
        out.push(version);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Some(out)
    }

    /// The nonce of a datagram in one of our formats (known version, long enough), sealed
    /// with any key: what a mismatch notice echoes.
    pub fn nonce_of(datagram: &[u8]) -> Option<[u8; NONCE_LEN]> {
        let version = *datagram.first()?;
        if datagram.len() < OVERHEAD || !(version == VERSION_1 || version == VERSION_2) {
            return None;
        }
        datagram.get(1..=NONCE_LEN)?.try_into().ok()
    }

    /// Opens a datagram of either version.
    pub fn open(&self, datagram: &[u8]) -> Result<Opened, OpenError> {
        if datagram.len() < OVERHEAD {
            return Err(OpenError::TooShort(datagram.len()));
        }
        let (header, sealed) = datagram.split_at(1 + NONCE_LEN);
        let (&version, nonce) = header.split_first().ok_or(OpenError::TooShort(0))?;
        if version != VERSION_1 && version != VERSION_2 {
            return Err(OpenError::Version(version));
        }
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Authentication)?;
        let mut body = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from([version]), &mut body)
            .map_err(|_| OpenError::Authentication)?;
        if version == VERSION_1 {
            return Ok(Opened {
                stamp: None,
                payload: plain.to_vec(),
            });
        }
        let (stamp, payload) = Stamp::decode(plain).ok_or(OpenError::TooShort(datagram.len()))?;
        Ok(Opened {
            stamp: Some(stamp),
            payload: payload.to_vec(),
        })
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
        assert_eq!(s.open(&d).unwrap().payload, b"hello");
        assert_eq!(s.open(&d).unwrap().stamp, None);
        // Random nonces: the same plaintext never gives the same datagram.
        assert_ne!(s.seal(b"hello").unwrap(), d);
        // Trailing whitespace of a Secret file does not change the key.
        let t = Sealer::from_secret(b"  secret\n").unwrap();
        assert_eq!(t.open(&d).unwrap().payload, b"hello");
    }

    #[test]
    fn stamped_round_trip() {
        let s = Sealer::from_secret(b"secret").unwrap();
        let stamp = Stamp {
            sender: 0x0102_0304_0506_0708,
            counter: u64::MAX,
            sent_at_ms: 1_700_000_000_000,
        };
        let d = s.seal_stamped(stamp, b"hello").unwrap();
        assert_eq!(d.len(), 5 + STAMPED_OVERHEAD);
        assert_eq!(d[0], 2);
        let o = s.open(&d).unwrap();
        assert_eq!(
            (o.stamp, o.payload.as_slice()),
            (Some(stamp), &b"hello"[..])
        );
        assert!(Sealer::nonce_of(&d).is_some());
        // The version is authenticated: a version-2 datagram relabelled 1 does not open (the
        // stamp cannot be stripped), nor the other way round.
        let mut relabelled = d;
        relabelled[0] = 1;
        assert_eq!(s.open(&relabelled), Err(OpenError::Authentication));
        let mut v1 = s.seal(b"0123456789abcdefghijklmnopqrstuvwxyz").unwrap();
        v1[0] = 2;
        assert_eq!(s.open(&v1), Err(OpenError::Authentication));
        // A stamp alone (empty payload) is fine; fewer octets than a stamp are not.
        let empty = s.seal_stamped(stamp, b"").unwrap();
        assert_eq!(s.open(&empty).unwrap().payload, b"");
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
        let mut v3 = d;
        v3[0] = 3;
        assert_eq!(s.open(&v3), Err(OpenError::Version(3)));
        assert_eq!(Sealer::from_secret(b" \n").unwrap_err(), KeyError::Empty);
    }
}
