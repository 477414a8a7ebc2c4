//! Encryption at rest: the keys of an unlocked repository and what they seal. `Crypt` is one
//! value carried with the repository's storage (`Storage::crypt`): chunk ids (`ChunkIds`),
//! the AEAD of groups, trailers and snapshot files, and the MAC of `config.json`. A plain
//! repository's `Crypt` seals nothing and hashes ids with plain BLAKE3. This module imports
//! nothing of the store: the formats call it. Spec: `store-format/README.md`, section
//! "Encryption".

mod chunk_ids;
mod segments;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

pub(crate) use chunk_ids::ChunkIds;
pub(crate) use segments::{SegmentOpener, SegmentSealer};

/// Bytes a sealed blob adds: the random nonce in front, the Poly1305 tag behind.
pub(crate) const NONCE: usize = 24;
pub(crate) const TAG: usize = 16;
pub(crate) const OVERHEAD: usize = NONCE + TAG;

/// The cipher and key derivation an encrypted repository names in `config.json`.
pub(crate) const CIPHER: &str = "xchacha20-poly1305";
pub(crate) const KDF: &str = "argon2id";

/// The derivation contexts of the subkeys (BLAKE3 `derive_key`): one master key, one key per
/// purpose, so that no key does two jobs.
const DATA_CONTEXT: &str = "opsi-backup 2026-12 repository data key (xchacha20-poly1305)";
const ID_CONTEXT: &str = "opsi-backup 2026-12 repository chunk id key (blake3 keyed)";
const MAC_CONTEXT: &str = "opsi-backup 2026-12 repository config mac key (blake3 keyed)";

/// What a sealed object is, bound into its tag as associated data: a group's sealed bytes
/// cannot pass for a trailer or a snapshot segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Group,
    Trailer,
}

impl Purpose {
    fn aad(self) -> &'static [u8] {
        match self {
            Purpose::Group => b"opsi-backup v6 group",
            Purpose::Trailer => b"opsi-backup v6 pack trailer",
        }
    }
}

/// A sealed object did not open: damaged, or sealed with another key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Unsealed(pub &'static str);

/// The 32 random bytes every other key derives from; zeroed when dropped.
pub(crate) struct MasterKey(pub Zeroizing<[u8; 32]>);

/// `N` random bytes from `OsRng`, the operating system's generator (the same source the
/// AES-GCM of opsiconfd backups takes its nonces from).
pub(crate) fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, Unsealed> {
    let mut b = Zeroizing::new([0u8; N]);
    chacha20poly1305::aead::rand_core::RngCore::try_fill_bytes(&mut OsRng, &mut b[..])
        .map_err(|_| Unsealed("the system gave no random bytes"))?;
    Ok(b)
}

impl MasterKey {
    /// A fresh random key.
    pub(crate) fn generate() -> Result<MasterKey, Unsealed> {
        random::<32>().map(MasterKey)
    }
}

/// The keys of an unlocked repository, or none for a plain one.
pub(crate) struct Crypt {
    ids: ChunkIds,
    sealed: Option<Keys>,
}

struct Keys {
    cipher: XChaCha20Poly1305,
    mac: Zeroizing<[u8; 32]>,
}

/// The `Crypt` of every plain repository.
pub(crate) static PLAIN: Crypt = Crypt {
    ids: ChunkIds::Plain,
    sealed: None,
};

impl Crypt {
    /// The keys derived from `master`.
    pub(crate) fn unlocked(master: &MasterKey) -> Crypt {
        let data = Zeroizing::new(blake3::derive_key(DATA_CONTEXT, &master.0[..]));
        let id = Zeroizing::new(blake3::derive_key(ID_CONTEXT, &master.0[..]));
        let mac = Zeroizing::new(blake3::derive_key(MAC_CONTEXT, &master.0[..]));
        Crypt {
            ids: ChunkIds::keyed(*id),
            sealed: Some(Keys {
                cipher: XChaCha20Poly1305::new(Key::from_slice(&data[..])),
                mac,
            }),
        }
    }

    pub(crate) fn is_encrypted(&self) -> bool {
        self.sealed.is_some()
    }

    /// How this repository computes chunk ids.
    pub(crate) fn ids(&self) -> &ChunkIds {
        &self.ids
    }

    /// `plain` sealed for `purpose`: nonce ‖ ciphertext ‖ tag; a plain repository's bytes as
    /// they are.
    pub(crate) fn seal(&self, purpose: Purpose, plain: Vec<u8>) -> Vec<u8> {
        match &self.sealed {
            None => plain,
            Some(k) => seal_with(&k.cipher, purpose.aad(), &plain),
        }
    }

    /// The plain bytes of `stored`, sealed by `seal` for `purpose`.
    pub(crate) fn open(&self, purpose: Purpose, stored: Vec<u8>) -> Result<Vec<u8>, Unsealed> {
        match &self.sealed {
            None => Ok(stored),
            Some(k) => open_with(&k.cipher, purpose.aad(), &stored),
        }
    }

    /// The keyed MAC of a config's canonical form (hex); `None` for a plain repository.
    pub(crate) fn config_mac(&self, canonical: &[u8]) -> Option<String> {
        let k = self.sealed.as_ref()?;
        Some(blake3::keyed_hash(&k.mac, canonical).to_hex().to_string())
    }

    /// A sealer of a snapshot file's stream (`segments`), when encrypted.
    pub(crate) fn segment_sealer<W: std::io::Write>(&self, out: W) -> SegmentSealer<W> {
        SegmentSealer::new(self.sealed.as_ref().map(|k| k.cipher.clone()), out)
    }

    /// The opener of a stream `segment_sealer` wrote; `None` for a plain repository.
    pub(crate) fn segment_opener<R: std::io::Read>(&self, r: R) -> Option<SegmentOpener<R>> {
        let k = self.sealed.as_ref()?;
        Some(SegmentOpener::new(k.cipher.clone(), r))
    }
}

/// Seals `plain` under a fresh random nonce (192 bits: random nonces never repeat in
/// practice, so writers on several machines need no counter they would have to share).
pub(crate) fn seal_with(cipher: &XChaCha20Poly1305, aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let sealed = cipher
        .encrypt(&nonce, Payload { msg: plain, aad })
        .expect("XChaCha20-Poly1305 seals any length below 256 GiB");
    let mut out = Vec::with_capacity(NONCE + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

/// Opens what `seal_with` sealed with the same `aad`.
pub(crate) fn open_with(
    cipher: &XChaCha20Poly1305,
    aad: &[u8],
    stored: &[u8],
) -> Result<Vec<u8>, Unsealed> {
    if stored.len() < OVERHEAD {
        return Err(Unsealed("too short to be sealed"));
    }
    let (nonce, body) = stored.split_at(NONCE);
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad })
        .map_err(|_| Unsealed("authentication failed (damaged, or sealed with another key)"))
}

/// The cipher of a key derived from a password (key files).
pub(crate) fn cipher_of(key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(Key::from_slice(&key[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_objects_open_only_for_their_key_and_purpose() {
        let a = Crypt::unlocked(&MasterKey::generate().unwrap());
        let b = Crypt::unlocked(&MasterKey::generate().unwrap());
        let s = a.seal(Purpose::Group, b"hello".to_vec());
        assert_eq!(s.len(), 5 + OVERHEAD);
        assert_eq!(a.open(Purpose::Group, s.clone()).unwrap(), b"hello");
        assert!(a.open(Purpose::Trailer, s.clone()).is_err());
        assert!(b.open(Purpose::Group, s.clone()).is_err());
        for i in 0..s.len() {
            let mut bad = s.clone();
            bad[i] ^= 1;
            assert!(a.open(Purpose::Group, bad).is_err(), "byte {i}");
        }
        assert_eq!(PLAIN.seal(Purpose::Group, b"x".to_vec()), b"x");
        assert_ne!(a.ids().id(b"x"), PLAIN.ids().id(b"x"));
        assert_ne!(a.ids().id(b"x"), b.ids().id(b"x"));
    }
}
