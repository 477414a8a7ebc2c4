//! A damaged `index.sqlite`, through the command line: every command refuses with a clear
//! message naming `rebuild-index` and changes nothing; `rebuild-index` moves the damaged index
//! aside and rebuilds it, losing no snapshot.

mod common;

use std::fs;
use std::path::Path;

use common::fake_server::{FakeServer, Rng};
use common::{ok, run};

/// The four kinds of damage, each applied to the bytes of an index.
fn damage(kind: &str, index: &mut Vec<u8>, rng: &mut Rng) {
    match kind {
        "random bytes" => index.iter_mut().for_each(|b| *b = rng.next() as u8),
        "truncated" => index.truncate(index.len() / 2),
        "zeroed header" => index[..100].fill(0),
        "page overwritten" => {
            let page = u16::from_be_bytes([index[16], index[17]]) as usize;
            let pages = index.len() / page;
            // Not page 1 (the header): some page among the tables and indexes.
            let at = page * (1 + rng.below(pages as u64 - 1) as usize);
            index[at..at + page]
                .iter_mut()
                .for_each(|b| *b = rng.next() as u8);
        }
        _ => unreachable!(),
    }
}

/// Names and contents of the files under `packs/` and `snapshots/`, and the index bytes.
fn state(repo: &Path) -> (Vec<(String, u64)>, Vec<u8>) {
    let mut files: Vec<(String, u64)> = walkdir::WalkDir::new(repo)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            let p = e.path().strip_prefix(repo).unwrap();
            p.starts_with("packs") || p.starts_with("snapshots")
        })
        .map(|e| (e.path().display().to_string(), e.metadata().unwrap().len()))
        .collect();
    files.sort();
    (files, fs::read(repo.join("index.sqlite")).unwrap())
}

fn copy_dir(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let target = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            fs::create_dir_all(&target).unwrap();
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_damaged_index_is_refused_by_every_command_and_rebuilt_by_rebuild_index() {
    let server = FakeServer::new(30, false);
    let work = tempfile::tempdir().unwrap();
    let pristine = work.path().join("pristine");
    ok(common::repo_bin(server.root(), &pristine).arg("init"));
    ok(common::repo_bin(server.root(), &pristine).arg("create"));
    ok(common::repo_bin(server.root(), &pristine).arg("create"));
    let before = common::snapshots(server.root(), &pristine);
    // Every command's connection was closed: the WAL is checkpointed into the index.
    let wal = pristine.join("index.sqlite-wal");
    assert!(!wal.exists() || fs::metadata(&wal).unwrap().len() == 0);

    let mut rng = Rng::new(7);
    for kind in [
        "random bytes",
        "truncated",
        "zeroed header",
        "page overwritten",
    ] {
        let repo = work.path().join(kind.replace(' ', "-"));
        copy_dir(&pristine, &repo);
        let mut bytes = fs::read(repo.join("index.sqlite")).unwrap();
        damage(kind, &mut bytes, &mut rng);
        fs::write(repo.join("index.sqlite"), &bytes).unwrap();
        let untouched = state(&repo);

        let latest = before[1]["id"].as_str().unwrap().to_string();
        let commands: [&[&str]; 6] = [
            &["snapshots"],
            &["create"],
            &["verify"],
            &["list", &latest],
            &["forget", "--keep-last", "1"],
            &["prune"],
        ];
        for args in commands {
            let (code, out, err) = run(common::repo_bin(server.root(), &repo).args(args));
            assert_ne!(code, 0, "{kind}: {args:?} succeeded:\n{out}\n{err}");
            assert!(
                err.contains("index.sqlite is damaged")
                    && err.contains(&format!(
                        "opsi-backup --repository {} rebuild-index",
                        repo.display()
                    )),
                "{kind}: {args:?}: {err}"
            );
            assert!(
                state(&repo) == untouched,
                "{kind}: {args:?} changed the repository"
            );
        }

        let (code, out, err) = run(common::repo_bin(server.root(), &repo).arg("rebuild-index"));
        assert_eq!(code, 0, "{kind}: rebuild-index:\n{out}\n{err}");
        assert!(out.contains("index rebuilt: "), "{out}");
        let aside: Vec<String> = fs::read_dir(&repo)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("index.sqlite.damaged-"))
            .collect();
        assert_eq!(aside.len(), 1, "{kind}: {aside:?}");
        assert_eq!(fs::read(repo.join(&aside[0])).unwrap(), bytes, "{kind}");
        assert_eq!(common::snapshots(server.root(), &repo), before, "{kind}");
        assert_eq!(
            ok(common::repo_bin(server.root(), &repo).arg("verify")).trim(),
            "Verified",
            "{kind}"
        );
    }
}
