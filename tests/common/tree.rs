//! A directory tree as comparable data: path -> (type, mode, uid, gid, mtime ns, content or
//! link target).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Dir {
        mode: u32,
        uid: u32,
        gid: u32,
        mtime_us: i128,
    },
    File {
        mode: u32,
        uid: u32,
        gid: u32,
        mtime_us: i128,
        sha: String,
        size: u64,
    },
    Link {
        target: String,
        mtime_us: i128,
    },
}

pub(crate) fn read(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).follow_links(false) {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let m = e.path().symlink_metadata().unwrap();
        // Microseconds: the archive keeps mtimes as Python's str(float), ~7 fractional digits.
        let mtime_us = (i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())) / 1000;
        let node = if m.file_type().is_symlink() {
            Node::Link {
                target: std::fs::read_link(e.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                mtime_us,
            }
        } else if m.is_dir() {
            Node::Dir {
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                mtime_us,
            }
        } else {
            let data = std::fs::read(e.path()).unwrap();
            Node::File {
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                mtime_us,
                sha: blake3::hash(&data).to_hex().to_string(),
                size: data.len() as u64,
            }
        };
        out.insert(rel, node);
    }
    out
}

fn mtime(n: &Node) -> i128 {
    match n {
        Node::Dir { mtime_us, .. } | Node::File { mtime_us, .. } | Node::Link { mtime_us, .. } => {
            *mtime_us
        }
    }
}

/// Equal, with mtimes within 1 µs: a float at today's Unix times resolves ~0.24 µs, so the
/// last microsecond digit of Python's str(float) may round either way.
fn same(a: &Node, b: &Node) -> bool {
    if (mtime(a) - mtime(b)).abs() > 1 {
        return false;
    }
    let mut b2 = b.clone();
    match &mut b2 {
        Node::Dir { mtime_us, .. } | Node::File { mtime_us, .. } | Node::Link { mtime_us, .. } => {
            *mtime_us = mtime(a)
        }
    }
    *a == b2
}

/// Asserts two trees are identical, listing the first differences.
pub(crate) fn assert_same(a: &Path, b: &Path) {
    let ta = read(a);
    let tb = read(b);
    let mut diffs = Vec::new();
    for (k, v) in &ta {
        match tb.get(k) {
            None => diffs.push(format!("only in {}: {k}", a.display())),
            Some(w) if !same(v, w) => diffs.push(format!("differs: {k}\n   {v:?}\n   {w:?}")),
            _ => {}
        }
    }
    for k in tb.keys() {
        if !ta.contains_key(k) {
            diffs.push(format!("only in {}: {k}", b.display()));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
