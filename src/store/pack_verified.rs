//! `state/pack-verified.json`: when each pack's data was last read back and re-hashed, so that
//! a rolling verify (`verify_subset`) reads the packs verified longest ago first. Spec:
//! `store-format/README.md`, section "State files". A missing or damaged record only means
//! every pack counts as never verified: it costs order, never a check.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::logging;
use crate::store::state;
use crate::store::storage::Storage;

const NAME: &str = "pack-verified.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    version: u32,
    /// Pack file name -> Unix seconds when its data was last read back.
    packs: BTreeMap<String, i64>,
}

/// When each pack was last read back; empty (with a warning) when the record is damaged.
pub(crate) fn load(storage: &dyn Storage) -> HashMap<String, i64> {
    match state::load::<Record>(storage, NAME) {
        Ok(r) => r.unwrap_or_default().packs.into_iter().collect(),
        Err(e) => {
            logging::warning(format!("{e}; every pack counts as never verified"));
            HashMap::new()
        }
    }
}

/// Records that `checked` were read back at `now`; packs not in `present` (pruned since) are
/// dropped. Best effort, like the verify record: a warning when it cannot be written.
pub(crate) fn record(
    storage: &dyn Storage,
    mut known: HashMap<String, i64>,
    checked: &[String],
    present: &[String],
    now: i64,
) {
    for name in checked {
        known.insert(name.clone(), now);
    }
    let present: std::collections::HashSet<&String> = present.iter().collect();
    let record = Record {
        version: 1,
        packs: known
            .into_iter()
            .filter(|(name, _)| present.contains(name))
            .collect(),
    };
    state::save(storage, NAME, "the packs verified", &record);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_reads_back_without_pruned_packs_and_damage_costs_only_order() {
        let dir = tempfile::tempdir().unwrap();
        let storage = crate::store::storage::LocalDir::new(dir.path());
        assert!(load(&storage).is_empty());
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        record(
            &storage,
            HashMap::new(),
            &names(&["a", "b"]),
            &names(&["a", "b"]),
            10,
        );
        let known = load(&storage);
        record(&storage, known, &names(&["b"]), &names(&["b", "c"]), 20);
        let back = load(&storage);
        assert_eq!(back.get("b"), Some(&20));
        assert_eq!(back.get("a"), None, "pruned pack dropped");
        assert_eq!(back.get("c"), None, "never verified");
        std::fs::write(dir.path().join("state").join(NAME), b"{garbage").unwrap();
        assert!(load(&storage).is_empty());
    }
}
