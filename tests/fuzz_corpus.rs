//! A short replay of the fuzz corpora (`fuzz/corpus/<target>/`) and of every input that once
//! crashed a target (`fuzz/regressions/<target>/`) through the same entry points the fuzz
//! targets call, so that the suite keeps every parser of untrusted bytes from panicking on
//! them. Fuzzing itself: README, "Fuzzing".

use std::path::Path;

#[test]
fn every_corpus_input_is_handled_without_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for (name, target) in opsi_backup::fuzz::TARGETS {
        let mut of_target = 0;
        for kind in ["corpus", "regressions"] {
            let dir = root.join(kind).join(name);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
            paths.sort();
            for p in paths {
                let data = std::fs::read(&p).unwrap();
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(
                    outcome.is_ok(),
                    "{name}: {} made the parser panic",
                    p.display()
                );
                of_target += 1;
            }
        }
        assert!(of_target > 0, "no corpus for fuzz target {name}");
        replayed += of_target;
    }
    eprintln!("replayed {replayed} fuzz inputs");
}
