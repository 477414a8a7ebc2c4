//! Rolling verification (`verify --read-data-subset`, `--max-duration`): slices cover every
//! pack, the packs never or longest ago verified go first and their damage is found, metadata
//! is checked in full whatever the subset, and only a verify that read everything counts as
//! complete for `health`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::fake_server::FakeServer;
use common::{ok, run};

/// A pack's name as the repository names it (its file name without `.pack`).
fn name(pack: &Path) -> String {
    pack.file_name()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches(".pack")
        .to_string()
}

/// `state/pack-verified.json`'s packs (name -> time), empty when there is none.
fn verified(repo: &Path) -> BTreeMap<String, i64> {
    let Ok(text) = std::fs::read_to_string(repo.join("state/pack-verified.json")) else {
        return BTreeMap::new();
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["packs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, t)| (k.clone(), t.as_i64().unwrap()))
        .collect()
}

/// A night whose changed audit file brings new data, hence at least one new pack.
fn night(server: &FakeServer, repo: &Path, n: u64) {
    let text: String = (0..20_000)
        .map(|i| {
            format!(
                "[SW_{i}]\nid = {:016x}\n",
                ((i + 1) * 0x9e37_79b9) ^ (n << 40)
            )
        })
        .collect();
    std::fs::write(
        server.p("/var/lib/opsi/config/audit/rolling.example.org.sw"),
        text,
    )
    .unwrap();
    ok(common::repo_bin(server.root(), repo).arg("create"));
}

#[test]
fn rolling_verify_covers_every_pack_and_reads_the_unverified_first() {
    let server = FakeServer::new(30, false);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    ok(common::repo_bin(server.root(), &repo).arg("init"));
    for n in 0..4 {
        night(&server, &repo, n);
    }
    let all: Vec<String> = common::pack_files(&repo).iter().map(|p| name(p)).collect();
    assert!(all.len() >= 4, "a pack a night: {all:?}");

    // Three slices read every pack once; none of them counts as a complete verify.
    for n in 1..=3 {
        let subset = format!("{n}/3");
        let (code, out, err) = run(common::repo_bin(server.root(), &repo).args([
            "-v",
            "verify",
            "--read-data-subset",
            &subset,
        ]));
        assert_eq!((code, out.trim()), (0, "Verified"), "{err}");
    }
    assert_eq!(
        verified(&repo).keys().cloned().collect::<Vec<_>>(),
        all,
        "the slices together read every pack"
    );
    assert!(
        !repo.join("state/last-verify.json").exists(),
        "a slice is no complete verify"
    );

    // A new night's pack was never verified: a one-pack subset reads it, and finds its damage.
    night(&server, &repo, 9);
    let new: Vec<PathBuf> = common::pack_files(&repo)
        .into_iter()
        .filter(|p| !all.contains(&name(p)))
        .collect();
    assert!(!new.is_empty());
    let target = &new[0];
    let mut bytes = std::fs::read(target).unwrap();
    let at = bytes.len() / 4;
    bytes[at] ^= 0xff;
    std::fs::write(target, bytes).unwrap();
    let before = verified(&repo);
    let (code, out, err) = run(common::repo_bin(server.root(), &repo).args([
        "-v",
        "verify",
        "--read-data-subset",
        "1B",
    ]));
    assert_eq!((code, out.trim()), (1, "Verification failed"), "{err}");
    let short = name(target);
    assert!(
        err.contains(&short[..12]),
        "the damaged new pack is named: {err}"
    );
    assert!(err.contains("not read back this time"), "{err}");
    assert_eq!(
        verified(&repo),
        before,
        "a damaged pack is not recorded as verified: it goes first again"
    );
}

#[test]
fn metadata_is_checked_in_full_even_when_no_pack_is_read() {
    let server = FakeServer::new(20, false);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    ok(common::repo_bin(server.root(), &repo).arg("init"));
    night(&server, &repo, 1);
    let (code, out, err) =
        run(common::repo_bin(server.root(), &repo).args(["-v", "verify", "--max-duration", "0s"]));
    assert_eq!((code, out.trim()), (0, "Verified"), "{err}");
    assert!(err.contains("not read back this time"), "{err}");

    let snapshot = walkdir::WalkDir::new(repo.join("snapshots"))
        .into_iter()
        .filter_map(|e| e.ok())
        .find(|e| e.file_type().is_file())
        .unwrap()
        .into_path();
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&snapshot, bytes).unwrap();
    let (code, out, err) =
        run(common::repo_bin(server.root(), &repo).args(["verify", "--max-duration", "0s"]));
    assert_eq!((code, out.trim()), (1, "Verification failed"), "{err}");

    // A snapshot's own verify reads all its data: the options are refused there.
    let (code, _, err) = run(common::repo_bin(server.root(), &repo).args([
        "verify",
        "latest",
        "--read-data-subset",
        "1/2",
    ]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("whole"), "{err}");
}
