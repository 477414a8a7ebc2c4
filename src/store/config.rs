//! The repository's `config.json`: format version, repository id and the parameters every
//! writer of this repository must use. Spec: `store-format/README.md`, section "config.json".

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::durable;
use crate::store::seal::{Crypt, CIPHER, KDF};
use crate::store::storage::{Storage, CONFIG_KEY};

/// A `config.json` larger than this is damaged (it holds a few hundred bytes).
const MAX_CONFIG: u64 = 1 << 20;

/// The repository format version this build creates. It reads and writes versions
/// `OLDEST_VERSION` up to this one as they are: no delta group into a version 2 repository,
/// packs with a single trailer into a version 2 or 3 one (older programs keep reading them).
pub const FORMAT_VERSION: u32 = 5;
/// The format version of an encrypted repository (spec "Encryption"): sealed groups,
/// trailers and snapshot files, keyed chunk ids. Plain repositories stay at
/// `FORMAT_VERSION`, which older builds read; they refuse this one.
pub const ENCRYPTED_VERSION: u32 = 6;
/// The first format version whose snapshots may be of another kind than opsi-backup's
/// (opsiconfd backups, spec "Snapshot kinds"); `Repository::allow_kinds` raises an older
/// repository to it, which changes nothing else on disk.
pub(crate) const KINDS_VERSION: u32 = 5;
/// The oldest format version this build reads and writes: version 3 only added delta groups,
/// version 4 only the second trailer copy of packs, version 5 only snapshot kinds.
pub(super) const OLDEST_VERSION: u32 = 2;

/// Content-defined chunking and packing parameters, fixed when the repository is created
/// (changing them would stop deduplication against older snapshots).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    /// FastCDC minimum, average and maximum chunk size in bytes.
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
    /// Consecutive new chunks are collected until their plain size reaches this, then
    /// compressed together into one group. 0 compresses every chunk on its own.
    pub group_size: u32,
    /// A pack is closed once it holds at least this many bytes.
    pub pack_size: u64,
    /// zstd compression level for groups and snapshot files.
    pub zstd_level: i32,
}

impl Default for ChunkerParams {
    /// The parameters chosen by the measurement in the spec, section "Chunking".
    fn default() -> Self {
        ChunkerParams {
            min_size: 2 * 1024,
            avg_size: 8 * 1024,
            max_size: 64 * 1024,
            group_size: 4 * 1024 * 1024,
            pack_size: 32 * 1024 * 1024,
            zstd_level: 3,
        }
    }
}

/// Where a snapshot's bulk data members lie (`layout::DataPart`; a test in `cli/create.rs`
/// checks that the two agree).
pub const BULK_PREFIX: &str = "DATA/";

/// From this size on, a bulk data member is compressed at level 1 (every bulk data member is
/// cut with `ChunkerParams::for_large_files`).
pub const LARGE_FILE: u64 = 1024 * 1024;

impl ChunkerParams {
    /// How the writer cuts a snapshot's metadata stream: a quarter of the content sizes
    /// (512 B / 2 KiB / 16 KiB by default). The stream is mostly member records and 32-byte
    /// chunk ids; a night's changed rows are spread over the dump, so its chunk list changes
    /// every few dozen ids, and smaller metadata chunks re-store less of it. Readers do not
    /// depend on where the stream was cut.
    pub(crate) fn for_metadata(&self) -> ChunkerParams {
        ChunkerParams {
            min_size: (self.min_size / 4).max(64),
            avg_size: (self.avg_size / 4).max(256),
            max_size: (self.max_size / 4).max(1024),
            ..self.clone()
        }
    }

    /// How the writer cuts the metadata stream's records of bulk data members (below
    /// `BULK_PREFIX`): min 4 KiB, average 16 KiB, max 64 KiB. A depot's member record is a few
    /// hundred bytes of JSON and one 32-byte id per ~512 KiB of content, and its files change
    /// whole and seldom; cut at the small metadata sizes, 100,000 files made ~33,000 metadata
    /// chunks, whose ids (1 MB) every snapshot file carries again, unchanged night or not.
    /// The writer cuts the stream where it passes from other members to bulk data and back,
    /// so both parts are cut by their content alone. Readers do not depend on it.
    pub(crate) fn for_bulk_metadata(&self) -> ChunkerParams {
        ChunkerParams {
            min_size: 4 * 1024,
            avg_size: 16 * 1024,
            max_size: 64 * 1024,
            ..self.clone()
        }
    }

    /// How the writer cuts a file of bulk data (a member below `BULK_PREFIX`: installers,
    /// WIM images, .opsi packages, drivers, scripts): min 128 KiB,
    /// average 512 KiB, max 2 MiB, whatever the repository's own sizes. At 8 KiB a 100 GB
    /// depot would be 13 million chunks, each an index row, a 32-byte id in every snapshot
    /// and an entry of the parent's lists in memory; at 512 KiB it is 200,000, and a change
    /// inside such a file costs about 1.6 times its size instead of 1.0. Spec: "Chunking",
    /// "Large files of bulk data" (the measurement, `benches/large_chunks.rs`).
    pub(crate) fn for_large_files(&self) -> ChunkerParams {
        ChunkerParams {
            min_size: 128 * 1024,
            avg_size: 512 * 1024,
            max_size: 2 * 1024 * 1024,
            ..self.clone()
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        let ok = self.min_size >= 64
            && self.avg_size >= 256
            && self.avg_size <= 4 * 1024 * 1024
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
            && self.max_size <= 16 * 1024 * 1024
            && self.pack_size > 0;
        if ok {
            Ok(())
        } else {
            Err(Error::Repository(format!(
                "unusable chunker parameters in config.json: {self:?}"
            )))
        }
    }
}

/// How an encrypted repository is sealed (`config.json` `encryption`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Encryption {
    pub cipher: String,
    pub kdf: String,
}

/// `config.json`. Unknown fields are refused: a damaged key name must not pass for an
/// unknown (ignored) field.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    pub version: u32,
    /// 32 hex digits, random, written into every snapshot file.
    pub id: String,
    pub chunker: ChunkerParams,
    /// Present in an encrypted repository (version 6) only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// BLAKE3 (hex) of the canonical serialisation of the other fields (`checksum_of`).
    /// Written by every save; a config of an older build has none and is still read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// An encrypted repository's keyed MAC (hex) of the same canonical form as `checksum`:
    /// once unlocked, a config changed by someone without the key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// The fields a checksum covers, in their canonical order (compact JSON, declaration order).
#[derive(Serialize)]
struct Checked<'a> {
    version: u32,
    id: &'a str,
    chunker: &'a ChunkerParams,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption: Option<&'a Encryption>,
}

impl Config {
    pub(crate) fn new(chunker: ChunkerParams) -> Result<Config> {
        chunker.check()?;
        Ok(Config {
            version: FORMAT_VERSION,
            id: hex::encode(durable::random_bytes::<16>()?),
            chunker,
            encryption: None,
            checksum: None,
            mac: None,
        })
    }

    /// The config of a new encrypted repository (format version 6).
    pub(crate) fn new_encrypted(chunker: ChunkerParams) -> Result<Config> {
        let mut c = Config::new(chunker)?;
        c.version = ENCRYPTED_VERSION;
        c.encryption = Some(Encryption {
            cipher: CIPHER.into(),
            kdf: KDF.into(),
        });
        Ok(c)
    }

    fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(&Checked {
            version: self.version,
            id: &self.id,
            chunker: &self.chunker,
            encryption: self.encryption.as_ref(),
        })
        .expect("config serialises")
    }

    /// Checks the MAC of an encrypted repository's config with its unlocked keys.
    pub(crate) fn check_mac(&self, crypt: &Crypt, shown: &str) -> Result<()> {
        let want = crypt.config_mac(&self.canonical());
        if want.is_none() || self.mac != want {
            return Err(Error::Corrupt(format!(
                "config.json of {shown} does not match its MAC: it was changed by someone \
                 without the repository's key (or damaged); refused"
            )));
        }
        Ok(())
    }

    /// Writes `config.json` of an encrypted repository with its MAC (`save` for plain ones).
    pub(crate) fn save_sealed(&self, storage: &dyn Storage, crypt: &Crypt) -> Result<()> {
        let mut sealed = self.clone();
        sealed.mac = crypt.config_mac(&self.canonical());
        sealed.save(storage)
    }

    /// The checksum of this config's fields (the `checksum` field itself excluded).
    pub(crate) fn checksum_of(&self) -> String {
        blake3::hash(&self.canonical()).to_hex().to_string()
    }

    /// Reads `config.json`; refuses versions this build does not know, unknown fields and a
    /// checksum that does not match.
    pub(crate) fn load(storage: &dyn Storage) -> Result<Config> {
        let shown = storage.show(CONFIG_KEY);
        // Opened, not `read_small`: a missing file keeps the system's own error.
        let text = storage
            .open(CONFIG_KEY)
            .and_then(|f| {
                if f.size() > MAX_CONFIG {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} bytes, larger than any config.json", f.size()),
                    ));
                }
                let mut text = vec![0u8; f.size() as usize];
                f.read_exact_at(&mut text, 0).map(|()| text)
            })
            .map_err(|e| Error::io(format!("reading {shown}"), e))?;
        let damaged = |why: String| {
            Error::Corrupt(format!(
                "{shown} is damaged ({why}); every snapshot of the repository depends on it"
            ))
        };
        let probe: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| Error::Repository(format!("{shown} is not valid JSON: {e}")))?;
        let version = probe.get("version").and_then(|v| v.as_u64());
        if !version.is_some_and(|v| {
            (u64::from(OLDEST_VERSION)..=u64::from(ENCRYPTED_VERSION)).contains(&v)
        }) {
            let version_shown = version.map_or_else(|| "none".to_string(), |v| v.to_string());
            return Err(Error::Repository(format!(
                "{}: repository format version {version_shown} is not supported by this opsi-backup \
                 (it reads versions {OLDEST_VERSION} to {ENCRYPTED_VERSION}); use the opsi-backup release that created it",
                shown
            )));
        }
        let config: Config = serde_json::from_value(probe).map_err(|e| damaged(format!("{e}")))?;
        if let Some(sum) = &config.checksum {
            if *sum != config.checksum_of() {
                return Err(damaged("checksum mismatch".into()));
            }
        }
        if (config.version == ENCRYPTED_VERSION) != config.encryption.is_some()
            || (config.encryption.is_none() && config.mac.is_some())
        {
            return Err(damaged(format!(
                "format version {} {} an encryption field",
                config.version,
                if config.encryption.is_some() {
                    "with"
                } else {
                    "without"
                }
            )));
        }
        if let Some(e) = &config.encryption {
            if e.cipher != CIPHER || e.kdf != KDF {
                return Err(Error::Repository(format!(
                    "{shown}: encryption {} with {} is not supported by this opsi-backup \
                     (it knows {CIPHER} with {KDF})",
                    e.cipher, e.kdf
                )));
            }
        }
        config.chunker.check()?;
        Ok(config)
    }

    /// Writes `config.json` durably (`Storage::replace`), with a fresh checksum.
    pub(crate) fn save(&self, storage: &dyn Storage) -> Result<()> {
        let mut sealed = self.clone();
        sealed.checksum = Some(self.checksum_of());
        let json = serde_json::to_vec_pretty(&sealed).expect("config serialises");
        storage.replace(CONFIG_KEY, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::storage::LocalDir;

    fn saved(dir: &std::path::Path) -> (std::path::PathBuf, String) {
        Config::new(ChunkerParams::default())
            .unwrap()
            .save(&LocalDir::new(dir))
            .unwrap();
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).unwrap();
        (path, text)
    }

    #[test]
    fn checksum_is_written_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (path, text) = saved(dir.path());
        let c = Config::load(&LocalDir::new(path.parent().unwrap())).unwrap();
        assert_eq!(c.checksum.as_deref(), Some(c.checksum_of().as_str()));
        // A changed value that is still valid and in range.
        std::fs::write(
            &path,
            text.replace("\"zstd_level\": 3", "\"zstd_level\": 2"),
        )
        .unwrap();
        let e = Config::load(&LocalDir::new(path.parent().unwrap()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("config.json") && e.contains("checksum mismatch"),
            "{e}"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, text) = saved(dir.path());
        for (from, to) in [
            ("\"group_size\"", "\"group_sizf\""),
            ("\"checksum\"", "\"checksuo\""),
        ] {
            std::fs::write(&path, text.replace(from, to)).unwrap();
            let e = Config::load(&LocalDir::new(path.parent().unwrap()))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("unknown field") || e.contains("missing field"),
                "{to}: {e}"
            );
        }
    }

    #[test]
    fn a_config_without_checksum_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let old = r#"{"version": 3, "id": "00112233445566778899aabbccddeeff", "chunker": {"min_size": 2048,
            "avg_size": 8192, "max_size": 65536, "group_size": 4194304, "pack_size": 33554432, "zstd_level": 3}}"#;
        std::fs::write(&path, old).unwrap();
        let c = Config::load(&LocalDir::new(path.parent().unwrap())).unwrap();
        assert_eq!(c.checksum, None);
        assert_eq!(c.chunker, ChunkerParams::default());
    }
}
