//! The `meta` map of an opsiconfd backup: what it is (type `opsiconfd_backup`, version
//! `"1"`), when and where it was made.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::opsiconfd::layers::Encoding;

/// The format version this build reads.
pub const VERSION: &str = "1";

#[derive(Debug, Clone, Default, Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    kind: Option<String>,
    version: Option<serde_json::Value>,
    opsiconfd_version: Option<String>,
    timestamp: Option<f64>,
    datetime: Option<String>,
    node_name: Option<String>,
    fqdn: Option<String>,
    host_id: Option<String>,
    server_id: Option<String>,
}

/// The meta of a backup, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// Unix seconds (meta.timestamp, whole).
    pub time: i64,
    /// meta.host_id, or meta.server_id without one.
    pub host: String,
    /// The other fields, as `name=value` pairs for the snapshot's sysinfo.
    pub pairs: Vec<(String, String)>,
}

impl Meta {
    /// Decodes and checks the `meta` value's bytes.
    pub fn parse(encoding: Encoding, bytes: &[u8]) -> Result<Meta> {
        let raw: Raw = match encoding {
            Encoding::Msgpack => rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
            Encoding::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        }
        .map_err(|e| {
            Error::Invalid(format!(
                "not an opsiconfd backup: its meta is unreadable ({e})"
            ))
        })?;
        if raw.kind.as_deref() != Some("opsiconfd_backup") {
            return Err(Error::Invalid(format!(
                "not an opsiconfd backup: meta.type is {:?}, not \"opsiconfd_backup\"",
                raw.kind.unwrap_or_default()
            )));
        }
        match &raw.version {
            Some(serde_json::Value::String(v)) if v == VERSION => {}
            v => {
                return Err(Error::Invalid(format!(
                    "opsiconfd backup format version {} is not supported (this opsi-backup \
                     reads version {VERSION})",
                    v.as_ref()
                        .map_or_else(|| "(none)".to_string(), |v| v.to_string())
                )))
            }
        }
        let host = raw
            .host_id
            .clone()
            .filter(|h| !h.is_empty())
            .or_else(|| raw.server_id.clone().filter(|h| !h.is_empty()))
            .ok_or_else(|| {
                Error::Invalid("opsiconfd backup without meta.host_id or meta.server_id".into())
            })?;
        let time = raw
            .timestamp
            .filter(|t| t.is_finite() && *t >= 0.0 && *t < 1e12)
            .ok_or_else(|| {
                Error::Invalid("opsiconfd backup without a usable meta.timestamp".into())
            })? as i64;
        let mut pairs = vec![("type".to_string(), "opsiconfd_backup".to_string())];
        for (k, v) in [
            ("opsiconfd_version", &raw.opsiconfd_version),
            ("datetime", &raw.datetime),
            ("node_name", &raw.node_name),
            ("fqdn", &raw.fqdn),
            ("host_id", &raw.host_id),
            ("server_id", &raw.server_id),
        ] {
            if let Some(v) = v {
                pairs.push((k.to_string(), v.clone()));
            }
        }
        Ok(Meta { time, host, pairs })
    }
}
