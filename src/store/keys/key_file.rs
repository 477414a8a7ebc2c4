//! One key file, `keys/<id>.json`: the repository's master key sealed with a key derived
//! from one password by Argon2id. Several key files are several passwords for the same
//! master key. Spec: `store-format/README.md`, section "Key files".

use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::store::seal::{self, MasterKey, CIPHER, KDF};

/// Argon2id cost of new key files: 64 MiB, 3 passes, one lane (about 0.1-0.2 s on a server
/// core per password tried). Stored in each key file, so that later builds may raise it.
pub(super) const DEFAULT_M_KIB: u32 = 64 * 1024;
pub(super) const DEFAULT_T: u32 = 3;
pub(super) const DEFAULT_P: u32 = 1;
/// What a key file read off storage may ask for: beyond, it is refused rather than let
/// a hostile file take 100 GB or an hour per password tried.
const MAX_M_KIB: u32 = 4 * 1024 * 1024;
const MAX_T: u32 = 64;
const MAX_P: u32 = 16;
/// A key file is a few hundred bytes.
pub(super) const MAX_KEY_FILE: u64 = 64 * 1024;

/// The password of a repository, zeroed when dropped.
pub struct RepoPassword(Zeroizing<Vec<u8>>);

impl RepoPassword {
    /// A password file's content (or a typed password): one trailing line break is not
    /// part of it; an empty password is refused.
    pub fn from_bytes(mut bytes: Vec<u8>) -> crate::error::Result<RepoPassword> {
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        let bytes = Zeroizing::new(bytes);
        if bytes.is_empty() {
            return Err(crate::error::Error::Password(
                "the repository password is empty".into(),
            ));
        }
        Ok(RepoPassword(bytes))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KdfParams {
    pub algorithm: String,
    /// Memory in KiB, passes, lanes (Argon2's m, t, p).
    pub m: u32,
    pub t: u32,
    pub p: u32,
    /// 16 random bytes, hex.
    pub salt: String,
}

/// The JSON of a key file. Unknown fields are refused, as in `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyFile {
    pub version: u32,
    /// The id of the repository (`config.json`), bound into the seal: a key file does not
    /// open another repository's master key.
    pub repository: String,
    pub kdf: KdfParams,
    pub cipher: String,
    /// nonce ‖ sealed master key ‖ tag, hex.
    pub sealed_key: String,
    /// Unix seconds; the host it was made on. For `key list`, not secret.
    pub created: i64,
    pub host: String,
    /// BLAKE3 (hex) of the other fields' compact JSON: a damaged file is told from a wrong
    /// password before any password is tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// Why a key file does not give the master key.
#[derive(Debug, thiserror::Error)]
pub(super) enum KeyFileError {
    #[error("damaged: {0}")]
    Damaged(String),
    #[error("the password does not open it")]
    WrongPassword,
}

fn aad(repository: &str) -> Vec<u8> {
    let mut a = b"opsi-backup v6 key file: ".to_vec();
    a.extend_from_slice(repository.as_bytes());
    a
}

fn derive(password: &RepoPassword, kdf: &KdfParams) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let salt =
        hex::decode(&kdf.salt).map_err(|_| KeyFileError::Damaged("salt is not hex".into()))?;
    let params = Params::new(kdf.m, kdf.t, kdf.p, Some(32))
        .map_err(|e| KeyFileError::Damaged(format!("Argon2id parameters: {e}")))?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(&password.0, &salt, &mut out[..])
        .map_err(|e| KeyFileError::Damaged(format!("Argon2id: {e}")))?;
    Ok(out)
}

impl KeyFile {
    /// A key file sealing `master` for `password`, with fresh salt and the default cost.
    pub(super) fn seal(
        master: &MasterKey,
        password: &RepoPassword,
        repository: &str,
        host: String,
        created: i64,
    ) -> Result<KeyFile, KeyFileError> {
        let salt = seal::random::<16>().map_err(|e| KeyFileError::Damaged(e.to_string()))?;
        let kdf = KdfParams {
            algorithm: KDF.into(),
            m: DEFAULT_M_KIB,
            t: DEFAULT_T,
            p: DEFAULT_P,
            salt: hex::encode(&salt[..]),
        };
        let wrapping = derive(password, &kdf)?;
        let sealed = seal::seal_with(&seal::cipher_of(&wrapping), &aad(repository), &master.0[..]);
        let mut k = KeyFile {
            version: 1,
            repository: repository.into(),
            kdf,
            cipher: CIPHER.into(),
            sealed_key: hex::encode(sealed),
            created,
            host,
            checksum: None,
        };
        k.checksum = Some(k.checksum_of());
        Ok(k)
    }

    fn checksum_of(&self) -> String {
        let mut plain = self.clone();
        plain.checksum = None;
        let canonical = serde_json::to_vec(&plain).expect("key file serialises");
        blake3::hash(&canonical).to_hex().to_string()
    }

    /// Parses and checks a key file's bytes (not the password).
    pub(super) fn parse(bytes: &[u8]) -> Result<KeyFile, KeyFileError> {
        let k: KeyFile = serde_json::from_slice(bytes)
            .map_err(|e| KeyFileError::Damaged(format!("not a key file: {e}")))?;
        if k.checksum.as_deref() != Some(k.checksum_of().as_str()) {
            return Err(KeyFileError::Damaged("checksum mismatch".into()));
        }
        if k.version != 1 || k.cipher != CIPHER || k.kdf.algorithm != KDF {
            return Err(KeyFileError::Damaged(format!(
                "key file version {}, cipher {:?}, kdf {:?}: this build reads version 1, {CIPHER}, {KDF}",
                k.version, k.cipher, k.kdf.algorithm
            )));
        }
        if k.kdf.m > MAX_M_KIB || k.kdf.t > MAX_T || k.kdf.p > MAX_P {
            return Err(KeyFileError::Damaged(format!(
                "Argon2id cost m={} KiB, t={}, p={} beyond what this build accepts",
                k.kdf.m, k.kdf.t, k.kdf.p
            )));
        }
        Ok(k)
    }

    pub(super) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("key file serialises")
    }

    /// The master key, when `password` is this file's; for repository `repository`.
    pub(super) fn open(
        &self,
        password: &RepoPassword,
        repository: &str,
    ) -> Result<MasterKey, KeyFileError> {
        let sealed = hex::decode(&self.sealed_key)
            .map_err(|_| KeyFileError::Damaged("sealed key is not hex".into()))?;
        let wrapping = derive(password, &self.kdf)?;
        let plain = Zeroizing::new(
            seal::open_with(&seal::cipher_of(&wrapping), &aad(repository), &sealed)
                .map_err(|_| KeyFileError::WrongPassword)?,
        );
        let key: [u8; 32] = plain[..]
            .try_into()
            .map_err(|_| KeyFileError::Damaged("the sealed key is not 32 bytes".into()))?;
        Ok(MasterKey(Zeroizing::new(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_opens_with_its_password_only_and_reports_damage() {
        let master = MasterKey::generate().unwrap();
        let pw = RepoPassword::from_bytes(b"correct horse\n".to_vec()).unwrap();
        let started = std::time::Instant::now();
        let k = KeyFile::seal(&master, &pw, "repo1", "h".into(), 1).unwrap();
        eprintln!("Argon2id (m=64 MiB, t=3) took {:?}", started.elapsed());
        let bytes = k.to_bytes();
        let back = KeyFile::parse(&bytes).unwrap();
        assert_eq!(back.open(&pw, "repo1").unwrap().0[..], master.0[..]);
        let wrong = RepoPassword::from_bytes(b"correct horse!".to_vec()).unwrap();
        assert!(matches!(
            back.open(&wrong, "repo1"),
            Err(KeyFileError::WrongPassword)
        ));
        assert!(matches!(
            back.open(&pw, "repo2"),
            Err(KeyFileError::WrongPassword)
        ));
        let text = String::from_utf8(bytes).unwrap();
        let bad = text.replacen("\"t\": 3", "\"t\": 2", 1);
        assert!(matches!(
            KeyFile::parse(bad.as_bytes()),
            Err(KeyFileError::Damaged(_))
        ));
        assert!(RepoPassword::from_bytes(b"\n".to_vec()).is_err());
    }
}
