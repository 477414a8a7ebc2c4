//! The tails of the write-once objects (packs, snapshot files: keys that name their content
//! and never change) that this process opened or wrote last. Opening an object fetches its
//! tail (its size, a pack's trailer, a whole snapshot file); a command that opens the same
//! pack again, or reads back the snapshot file it just wrote to index it, finds the tail here
//! and sends no request. Other keys (`config.json`, `state/`, `locks/`) change and are never
//! kept. A removed key is forgotten.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Tails kept: at most 16 × 64 KiB.
const KEPT: usize = 16;

/// Whether `key` is written once and never changed.
fn write_once(key: &str) -> bool {
    key.starts_with("packs/") || key.starts_with("snapshots/")
}

/// A tail: the object's size and its last bytes.
pub(crate) type Tail = (u64, Arc<Vec<u8>>);

#[derive(Default)]
pub(crate) struct Tails {
    /// (key, tail), most recent last.
    kept: Mutex<VecDeque<(String, Tail)>>,
}

impl Tails {
    pub(crate) fn get(&self, key: &str) -> Option<Tail> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.iter()
            .find(|(k, _)| k == key)
            .map(|(_, (size, bytes))| (*size, Arc::clone(bytes)))
    }

    pub(crate) fn put(&self, key: &str, size: u64, bytes: Arc<Vec<u8>>) {
        if !write_once(key) {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|(k, _)| k != key);
        kept.push_back((key.to_string(), (size, bytes)));
        while kept.len() > KEPT {
            kept.pop_front();
        }
    }

    pub(crate) fn forget(&self, key: &str) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|(k, _)| k != key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_write_once_keys_are_kept_the_newest_sixteen() {
        let t = Tails::default();
        let b = Arc::new(vec![1u8, 2, 3]);
        t.put("config.json", 3, Arc::clone(&b));
        t.put("state/generation", 3, Arc::clone(&b));
        assert!(t.get("config.json").is_none() && t.get("state/generation").is_none());
        for n in 0..20 {
            t.put(&format!("packs/00/{n:02}.pack"), n, Arc::clone(&b));
        }
        assert!(t.get("packs/00/03.pack").is_none());
        assert_eq!(t.get("packs/00/04.pack").unwrap().0, 4);
        t.forget("packs/00/19.pack");
        assert!(t.get("packs/00/19.pack").is_none());
        t.put("snapshots/ab.snap", 3, b);
        assert_eq!(t.get("snapshots/ab.snap").unwrap().1.len(), 3);
    }
}
