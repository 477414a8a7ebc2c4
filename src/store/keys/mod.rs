//! The key files of an encrypted repository (`keys/<id>.json`, through `Storage` like every
//! data file) and unlocking: a password opens one of them, which gives the master key, from
//! which `seal::Crypt` derives the keys that `Unlocked` carries with the storage. Also the
//! refusal of a downgraded `config.json`. Spec: `store-format/README.md`, sections "Key
//! files" and "Threat model".

mod key_file;
mod unlocked;

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::logging;
use crate::store::config::Config;
use crate::store::durable;
use crate::store::seal::{Crypt, MasterKey};
use crate::store::storage::Storage;

pub use key_file::RepoPassword;
use key_file::{KeyFile, KeyFileError, MAX_KEY_FILE};
pub(crate) use unlocked::Unlocked;

/// Where key files lie.
pub(crate) const KEYS_PREFIX: &str = "keys/";

pub(crate) fn key_of(id: &str) -> String {
    format!("{KEYS_PREFIX}{id}.json")
}

fn id_of(key: &str) -> Option<&str> {
    key.strip_prefix(KEYS_PREFIX)?.strip_suffix(".json")
}

/// Asks for the password of the repository named by its argument (a file, the environment
/// or a terminal: the caller knows). Called only for an encrypted repository.
pub type PasswordSource<'a> = &'a dyn Fn(&str) -> Result<RepoPassword>;

/// For a repository opened without any password source: an encrypted one is refused.
pub fn no_password(shown: &str) -> Result<RepoPassword> {
    Err(Error::Password(format!(
        "repository {shown} is encrypted and no password was given"
    )))
}

/// One key file as `key list` shows it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: String,
    pub created: i64,
    pub host: String,
    /// Why the file cannot be used, when it is damaged.
    pub damaged: Option<String>,
    /// Whether this is the key the repository was opened with.
    pub in_use: bool,
}

/// The master key of an unlocked repository and which key file gave it.
pub(crate) struct InUse {
    pub master: MasterKey,
    pub key_id: String,
}

/// Every key file with what it says, parsed but not opened.
fn read_all(storage: &dyn Storage) -> Result<Vec<(String, std::result::Result<KeyFile, String>)>> {
    let mut out = Vec::new();
    for key in storage.list(KEYS_PREFIX)? {
        let Some(id) = id_of(&key) else { continue };
        let parsed = match storage.read_small(&key, MAX_KEY_FILE) {
            Ok(Some(bytes)) => KeyFile::parse(&bytes).map_err(|e| e.to_string()),
            Ok(None) => continue,
            Err(e) => Err(format!("cannot be read: {e}")),
        };
        out.push((id.to_string(), parsed));
    }
    Ok(out)
}

/// The key files, for `key list` and `verify` (damaged ones included, said so).
pub(crate) fn list(storage: &dyn Storage, in_use: Option<&str>) -> Result<Vec<KeyInfo>> {
    Ok(read_all(storage)?
        .into_iter()
        .map(|(id, k)| KeyInfo {
            in_use: in_use == Some(id.as_str()),
            created: k.as_ref().map_or(0, |k| k.created),
            host: k
                .as_ref()
                .map_or_else(|_| String::new(), |k| k.host.clone()),
            damaged: k.err(),
            id,
        })
        .collect())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Writes a new key file sealing `master` for `password`; returns its id.
pub(crate) fn add(
    storage: &dyn Storage,
    repository: &str,
    master: &MasterKey,
    password: &RepoPassword,
) -> Result<String> {
    let file = KeyFile::seal(master, password, repository, host(), now())
        .map_err(|e| Error::Repository(format!("cannot make a key file: {e}")))?;
    let id = hex::encode(durable::random_bytes::<16>()?);
    storage.replace(&key_of(&id), &file.to_bytes())?;
    Ok(id)
}

/// Removes key file `id` (a unique prefix will do); refuses the key in use and the last one.
pub(crate) fn remove(storage: &dyn Storage, id: &str, in_use: &str) -> Result<String> {
    let all = read_all(storage)?;
    let hits: Vec<&String> = all
        .iter()
        .map(|(i, _)| i)
        .filter(|i| i.starts_with(id))
        .collect();
    let target = match hits.as_slice() {
        [one] => (*one).clone(),
        [] => return Err(Error::Invalid(format!("no key file with id {id}"))),
        _ => return Err(Error::Invalid(format!("key id {id} is ambiguous"))),
    };
    if target == in_use {
        return Err(Error::Invalid(format!(
            "key {target} is the one this password opened: remove it with another password \
             (or change it with `key passwd`)"
        )));
    }
    let usable = all
        .iter()
        .filter(|(i, k)| *i != target && k.is_ok())
        .count();
    if usable == 0 {
        return Err(Error::Invalid(format!(
            "key {target} is the last usable key of the repository: without it no password \
             opens the repository"
        )));
    }
    storage.remove(&key_of(&target))?;
    storage.flush_removals(KEYS_PREFIX)?;
    Ok(target)
}

/// Opens the master key with `password`: tries every intact key file.
fn unlock(
    storage: &dyn Storage,
    repository: &str,
    shown: &str,
    password: &RepoPassword,
) -> Result<InUse> {
    let all = read_all(storage)?;
    let mut damaged = Vec::new();
    for (id, k) in &all {
        let k = match k {
            Ok(k) => k,
            Err(why) => {
                logging::warning(format!("key file {} is {why}", storage.show(&key_of(id))));
                damaged.push(id.clone());
                continue;
            }
        };
        match k.open(password, repository) {
            Ok(master) => {
                return Ok(InUse {
                    master,
                    key_id: id.clone(),
                })
            }
            Err(KeyFileError::WrongPassword) => {}
            Err(e) => {
                logging::warning(format!("key file {} is {e}", storage.show(&key_of(id))));
                damaged.push(id.clone());
            }
        }
    }
    if all.is_empty() {
        return Err(Error::Corrupt(format!(
            "repository {shown} is encrypted but has no key file under keys/: no password can open it"
        )));
    }
    let also = if damaged.is_empty() {
        String::new()
    } else {
        format!(
            " ({} key file(s) damaged: {})",
            damaged.len(),
            damaged.join(", ")
        )
    };
    Err(Error::Password(format!(
        "wrong password for repository {shown} (no key file opens with it){also}"
    )))
}

/// The storage of a repository whose `config.json` is `config`: a plain repository's as it
/// is (refused when key files say it was encrypted: a downgraded config), an encrypted one's
/// unlocked with the password `password` gives, its config's MAC checked.
pub(crate) fn unlock_storage(
    storage: Arc<dyn Storage>,
    config: &Config,
    shown: &str,
    password: PasswordSource<'_>,
) -> Result<(Arc<dyn Storage>, Option<InUse>)> {
    if config.encryption.is_none() {
        if !storage.list(KEYS_PREFIX)?.is_empty() {
            return Err(downgraded(shown, "keys/ holds key files"));
        }
        return Ok((storage, None));
    }
    let pw = password(shown)?;
    let in_use = unlock(&*storage, &config.id, shown, &pw)?;
    let crypt = Crypt::unlocked(&in_use.master);
    config.check_mac(&crypt, shown)?;
    let unlocked: Arc<dyn Storage> = Arc::new(Unlocked::new(storage, crypt));
    Ok((unlocked, Some(in_use)))
}

/// A plain `config.json` where the repository was encrypted: refused, it would make this
/// build write plain data into an encrypted repository and read unauthenticated data.
pub(crate) fn downgraded(shown: &str, evidence: &str) -> Error {
    Error::Corrupt(format!(
        "repository {shown}: config.json says it is not encrypted, but {evidence}; refused as \
         tampering (an encrypted repository's config.json was replaced by a plain one)"
    ))
}

/// A new master key for a repository being created, with its first key file.
pub(crate) fn create(
    storage: &Arc<dyn Storage>,
    repository: &str,
    password: &RepoPassword,
) -> Result<(Arc<dyn Storage>, InUse)> {
    let master = MasterKey::generate().map_err(|e| Error::Repository(e.to_string()))?;
    let key_id = add(&**storage, repository, &master, password)?;
    let crypt = Crypt::unlocked(&master);
    let unlocked: Arc<dyn Storage> = Arc::new(Unlocked::new(Arc::clone(storage), crypt));
    Ok((unlocked, InUse { master, key_id }))
}

/// The index (a local cache) remembers that its repository is encrypted; a plain
/// `config.json` for a repository it remembers so is refused as a downgrade.
pub(crate) fn check_remembered(
    conn: &rusqlite::Connection,
    encrypted: bool,
    shown: &str,
) -> Result<()> {
    if encrypted {
        crate::store::index::remember_encrypted(conn)
    } else if crate::store::index::remembers_encrypted(conn)? {
        Err(downgraded(shown, "its index remembers it as encrypted"))
    } else {
        Ok(())
    }
}
