//! `state/last-verify.json`: when the whole repository was last verified and with what
//! result, so that monitoring (`health`) can tell a repository nobody checks. Spec:
//! `store-format/README.md`, section "State files".

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::store::state;
use crate::store::storage::Storage;
use crate::store::verify::VerifyReport;

/// The file, under `state/`.
const NAME: &str = "last-verify.json";

/// The outcome of the last `verify` of the whole repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LastVerify {
    /// Unix seconds when it started and when it ended.
    pub(crate) started: i64,
    pub(crate) finished: i64,
    /// True when it read everything and found no problem.
    pub(crate) ok: bool,
    /// How many problems it reported.
    pub(crate) problems: u64,
    pub(crate) snapshots: u64,
    pub(crate) packs: u64,
    pub(crate) chunks: u64,
    pub(crate) bytes: u64,
    /// Why it stopped before the end, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

impl LastVerify {
    pub(crate) fn of(started: i64, outcome: &Result<VerifyReport>) -> LastVerify {
        let finished = chrono::Utc::now().timestamp();
        match outcome {
            Ok(r) => LastVerify {
                started,
                finished,
                ok: r.is_ok(),
                problems: r.problems.len() as u64,
                snapshots: r.snapshots,
                packs: r.packs,
                chunks: r.chunks,
                bytes: r.bytes,
                error: None,
            },
            Err(e) => LastVerify {
                started,
                finished,
                ok: false,
                problems: 0,
                snapshots: 0,
                packs: 0,
                chunks: 0,
                bytes: 0,
                error: Some(e.to_string()),
            },
        }
    }
}

/// Writes the record durably (`Storage::replace`). Best effort:
/// a verify whose record cannot be written (read-only mount) still reports its result; the
/// record then stays older and monitoring says so.
pub(crate) fn record(storage: &dyn Storage, last: &LastVerify) {
    state::save(storage, NAME, "the verify", last);
}

/// The record, if a verify of the whole repository ever wrote one.
pub(crate) fn read(storage: &dyn Storage) -> Result<Option<LastVerify>> {
    state::load(storage, NAME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn a_record_reads_back_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let storage = crate::store::storage::LocalDir::new(dir.path());
        assert_eq!(read(&storage).unwrap(), None);
        let last = LastVerify::of(7, &Err(Error::Corrupt("pack abc cannot be read".into())));
        record(&storage, &last);
        let back = read(&storage).unwrap().unwrap();
        assert_eq!(back, last);
        assert!(!back.ok && back.error.unwrap().contains("pack abc"));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}
