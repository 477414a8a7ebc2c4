//! An opsiconfd snapshot read in opsi terms, for `diff`: every object by its class and
//! identity (the fields that name it in opsi's object model), with a digest of its encoded
//! bytes, and every config file with a digest of its content. One class is held in memory at
//! a time; of the objects only their identities and digests are kept.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::member::Member;
use crate::opsiconfd::layers::Encoding;
use crate::opsiconfd::split::FRAME_MAGIC;
use crate::opsiconfd::{json, msgpack, FRAME_PATH};
use crate::sink::MemberSink;

/// The fields that identify an object of each class (opsi's object model); objects of a
/// class not listed are identified by their whole content.
fn ident_fields(class: &str) -> &'static [&'static str] {
    const SOFTWARE: &[&str] = &["name", "version", "subVersion", "language", "architecture"];
    match class {
        "Host" | "Config" | "Group" | "LicenseContract" | "LicensePool" | "User" => &["id"],
        "ConfigState" => &["configId", "objectId"],
        "Product" => &["id", "productVersion", "packageVersion"],
        "ProductProperty" => &[
            "productId",
            "productVersion",
            "packageVersion",
            "propertyId",
        ],
        "ProductDependency" => &[
            "productId",
            "productVersion",
            "packageVersion",
            "productAction",
            "requiredProductId",
        ],
        "ProductOnDepot" => &["productId", "productType", "depotId"],
        "ProductOnClient" => &["productId", "productType", "clientId"],
        "ProductPropertyState" => &["productId", "propertyId", "objectId"],
        "ObjectToGroup" => &["groupType", "groupId", "objectId"],
        "AuditSoftware" => SOFTWARE,
        "AuditSoftwareOnClient" => &[
            "name",
            "version",
            "subVersion",
            "language",
            "architecture",
            "clientId",
        ],
        "AuditSoftwareToLicensePool" => &[
            "name",
            "version",
            "subVersion",
            "language",
            "architecture",
            "licensePoolId",
        ],
        "SoftwareLicense" => &["id", "licenseContractId"],
        "SoftwareLicenseToLicensePool" => &["softwareLicenseId", "licensePoolId"],
        "LicenseOnClient" => &["softwareLicenseId", "licensePoolId", "clientId"],
        _ => &[],
    }
}

/// One backup's objects and config files, by identity.
#[derive(Debug, Default)]
pub struct Inventory {
    encoding: Option<Encoding>,
    /// The member before was the order stream of a grouped class.
    grouped_next: bool,
    /// (class, identity) -> digest.
    objects: BTreeMap<(String, String), [u8; 32]>,
    /// name -> (path, digest of the content).
    config_files: BTreeMap<String, (String, [u8; 32])>,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

fn decode(enc: Encoding, bytes: &[u8]) -> Result<Value> {
    match enc {
        Encoding::Msgpack => rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
        Encoding::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
    }
    .map_err(|e| {
        Error::Corrupt(format!(
            "an object of the opsiconfd backup is unreadable: {e}"
        ))
    })
}

impl Inventory {
    fn class(&mut self, enc: Encoding, class: &str, bytes: &[u8]) -> Result<()> {
        let items = if self.grouped_next {
            match enc {
                Encoding::Msgpack => msgpack::items(bytes)?,
                Encoding::Json => json::items(bytes)?,
            }
        } else {
            let items = match enc {
                Encoding::Msgpack => msgpack::array_items(bytes, 0)?.map(|a| a.items),
                Encoding::Json => json::array_items(bytes, 0)?,
            };
            items.unwrap_or_default()
        };
        let fields = ident_fields(class);
        for r in items {
            let raw = &bytes[r];
            let digest = *blake3::hash(raw).as_bytes();
            let ident = if fields.is_empty() {
                hex::encode(&digest[..8])
            } else {
                let v = decode(enc, raw)?;
                fields
                    .iter()
                    .map(|f| v.get(*f).map(text).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(";")
            };
            self.objects.insert((class.to_string(), ident), digest);
        }
        Ok(())
    }

    fn config_files(&mut self, enc: Encoding, bytes: &[u8]) -> Result<()> {
        if let Value::Object(map) = decode(enc, bytes)? {
            for (name, file) in map {
                let path = file.get("path").map(text).unwrap_or_default();
                let content = file.get("content").map(text).unwrap_or_default();
                let digest = *blake3::hash(content.as_bytes()).as_bytes();
                self.config_files.insert(name, (path, digest));
            }
        }
        Ok(())
    }
}

impl MemberSink for Inventory {
    fn add(&mut self, m: &Member, content: &mut dyn Read) -> Result<()> {
        let mut bytes = Vec::with_capacity(m.size.min(1 << 30) as usize);
        content
            .read_to_end(&mut bytes)
            .map_err(|e| Error::Corrupt(format!("cannot read {}: {e}", m.path)))?;
        if m.path == FRAME_PATH {
            self.encoding = match (bytes.starts_with(FRAME_MAGIC), bytes.get(FRAME_MAGIC.len())) {
                (true, Some(0)) => Some(Encoding::Msgpack),
                (true, Some(1)) => Some(Encoding::Json),
                _ => {
                    return Err(Error::Corrupt(
                        "the opsiconfd frame stream is damaged".into(),
                    ))
                }
            };
            return Ok(());
        }
        let enc = self
            .encoding
            .ok_or_else(|| Error::Corrupt("an opsiconfd snapshot without its frame".into()))?;
        // Class names lose their dots in member paths, so only order streams have one.
        if m.path.contains(".order") {
            self.grouped_next = true;
            return Ok(());
        }
        if let Some(class) = m.path.strip_prefix("opsiconfd/objects/") {
            let class = class.split_once('-').map_or(class, |(_, c)| c);
            self.class(enc, class, &bytes)?;
        } else if m.path == "opsiconfd/config_files" {
            self.config_files(enc, &bytes)?;
        }
        self.grouped_next = false;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

impl Change {
    pub fn sign(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Changed => 'M',
        }
    }
}

/// One object that differs.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectChange {
    pub change: Change,
    pub class: String,
    /// Its identity: the values of its class's identifying fields, joined by `;`.
    pub ident: String,
}

/// One config file that differs.
#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    pub change: Change,
    pub name: String,
    pub path: String,
}

/// Counts of one class.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
}

/// What changed between two opsiconfd backups.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectsDiff {
    pub objects: Vec<ObjectChange>,
    pub config_files: Vec<FileChange>,
    /// Per class, the counts.
    pub classes: BTreeMap<String, Counts>,
}

fn changes<K: Ord + Clone, V: PartialEq>(
    a: &BTreeMap<K, V>,
    b: &BTreeMap<K, V>,
) -> Vec<(Change, K)> {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push((Change::Removed, k.clone())),
            Some(w) if w != v => out.push((Change::Changed, k.clone())),
            Some(_) => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            out.push((Change::Added, k.clone()));
        }
    }
    out.sort_by(|x, y| x.1.cmp(&y.1));
    out
}

/// Compares two inventories.
pub fn compare(a: &Inventory, b: &Inventory) -> ObjectsDiff {
    let mut classes: BTreeMap<String, Counts> = BTreeMap::new();
    let objects: Vec<ObjectChange> = changes(&a.objects, &b.objects)
        .into_iter()
        .map(|(change, (class, ident))| {
            let c = classes.entry(class.clone()).or_default();
            match change {
                Change::Added => c.added += 1,
                Change::Removed => c.removed += 1,
                Change::Changed => c.changed += 1,
            }
            ObjectChange {
                change,
                class,
                ident,
            }
        })
        .collect();
    let config_files = changes(&a.config_files, &b.config_files)
        .into_iter()
        .map(|(change, name)| {
            let path = b
                .config_files
                .get(&name)
                .or_else(|| a.config_files.get(&name))
                .map(|(p, _)| p.clone())
                .unwrap_or_default();
            FileChange { change, name, path }
        })
        .collect();
    ObjectsDiff {
        objects,
        config_files,
        classes,
    }
}
