//! The layout of ARCHITECTURE.md holds: every top-level module of `src/` has a row in its
//! table "Who may import whom", the rows form layers (no circle), and no source file imports
//! (`crate::<module>`) a module its row does not allow. A forbidden import fails this test, so
//! the map and the code stay in step.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const BEGIN: &str = "<!-- imports: begin -->";
const END: &str = "<!-- imports: end -->";

/// Module -> the modules it may import, from the table between the markers. `*` allows all.
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let doc = fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let start = doc.find(BEGIN).expect("imports table begin marker") + BEGIN.len();
    let end = doc.find(END).expect("imports table end marker");
    let mut map = BTreeMap::new();
    for line in doc[start..end].lines() {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
        if cells.len() < 3 || !cells[0].trim().starts_with('`') {
            continue;
        }
        let name = cells[0].trim().trim_matches('`').to_string();
        let deps = ticked(cells[cells.len() - 1]);
        assert!(
            map.insert(name.clone(), deps).is_none(),
            "{name} has two rows"
        );
    }
    assert!(!map.is_empty(), "no rows between the markers");
    map
}

/// The `ticked` names of a table cell.
fn ticked(cell: &str) -> BTreeSet<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Top-level modules of the library (`src/x.rs` or `src/x/`), without lib.rs and main.rs.
fn modules() -> BTreeSet<String> {
    fs::read_dir(root().join("src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_stem()?.to_str()?.to_string();
            let is_mod = p.is_dir() || p.extension().is_some_and(|e| e == "rs");
            (is_mod && name != "lib" && name != "main").then_some(name)
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The modules named as `crate::<name>` in code (comments left out), with the line.
fn imports(text: &str) -> Vec<(String, usize)> {
    names_after(text, "crate::")
}

/// The names that follow `prefix` in code (`prefix{a, b::c}` gives a and b), with the line.
fn names_after(text: &str, prefix: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let after = &rest[at + prefix.len()..];
            let before = rest[..at].chars().last();
            // `$crate::` in a macro is not an import of this crate.
            if before != Some('$') {
                let group = after.strip_prefix('{');
                let names: Vec<&str> = match group {
                    Some(g) => g
                        .split('}')
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .map(|s| s.trim().split("::").next().unwrap_or(""))
                        .collect(),
                    None => vec![after
                        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or("")],
                };
                for name in names.into_iter().filter(|s| !s.is_empty()) {
                    out.push((name.to_string(), n + 1));
                }
            }
            rest = after;
        }
    }
    out
}

#[test]
fn every_module_is_on_the_map_and_the_map_has_no_circle() {
    let map = allowed();
    let modules = modules();
    let listed: BTreeSet<String> = map.keys().cloned().collect();
    let missing: Vec<_> = modules.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&modules).collect();
    assert!(
        missing.is_empty(),
        "modules without a row in ARCHITECTURE.md: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "rows for modules that do not exist: {stale:?}"
    );
    for (name, deps) in &map {
        for d in deps.iter().filter(|d| *d != "*") {
            assert!(
                map.contains_key(d),
                "{name} may import `{d}`, which is no module"
            );
        }
    }
    // Layers: repeatedly take away the modules whose allowed imports are all taken away.
    let mut left: BTreeMap<&String, BTreeSet<&String>> = map
        .iter()
        .filter(|(_, deps)| !deps.contains("*"))
        .map(|(m, deps)| (m, deps.iter().collect()))
        .collect();
    while !left.is_empty() {
        let ground: Vec<&String> = left
            .iter()
            .filter(|(m, deps)| deps.iter().all(|d| !left.contains_key(d) || d == *m))
            .map(|(m, _)| *m)
            .collect();
        assert!(
            !ground.is_empty(),
            "the allowed imports form a circle among {:?}",
            left.keys()
        );
        for g in ground {
            left.remove(g);
        }
    }
}

#[test]
fn no_source_file_imports_what_its_module_may_not() {
    let map = allowed();
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut forbidden = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let module = first.trim_end_matches(".rs");
        let Some(deps) = map.get(module) else {
            continue; // lib.rs, main.rs; a missing row fails the other test
        };
        let text = fs::read_to_string(&f).unwrap();
        for (name, line) in imports(&text) {
            if name == module || deps.contains("*") || deps.contains(&name) {
                continue;
            }
            if !map.contains_key(&name) {
                continue; // `crate::Result` and other items of lib.rs
            }
            forbidden.push(format!(
                "src/{}:{line}: {module} imports {name}",
                rel.display()
            ));
        }
    }
    assert!(
        forbidden.is_empty(),
        "imports that ARCHITECTURE.md does not allow (move the code, or change the map \
         and say why):\n{}",
        forbidden.join("\n")
    );
}

/// The files of one module import each other without a circle: inside `src/<module>/`, an
/// edge runs from a file (or folder) to each sibling it names as `crate::<module>::<sibling>`.
/// Test code (from the first `#[cfg(test)]` on, and `tests*.rs`) is left out.
#[test]
fn no_circle_among_the_files_of_a_module() {
    let src = root().join("src");
    for module in modules() {
        let dir = src.join(&module);
        if !dir.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        let sub_of = |p: &Path| -> String {
            let first = p.strip_prefix(&dir).unwrap().components().next().unwrap();
            first
                .as_os_str()
                .to_str()
                .unwrap()
                .trim_end_matches(".rs")
                .to_string()
        };
        let subs: BTreeSet<String> = files.iter().map(|f| sub_of(f)).collect();
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let prefix = format!("crate::{module}::");
        for f in &files {
            let from = sub_of(f);
            if from == "mod" || from.starts_with("tests") {
                continue;
            }
            let text = fs::read_to_string(f).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (name, _) in names_after(code, &prefix) {
                if name != from && subs.contains(&name) && name != "mod" {
                    edges.entry(from.clone()).or_default().insert(name);
                }
            }
        }
        // Take away, again and again, the files that import nothing left.
        let mut left: BTreeSet<String> = edges.keys().cloned().collect();
        while !left.is_empty() {
            let free: Vec<String> = left
                .iter()
                .filter(|f| edges[*f].iter().all(|t| !left.contains(t)))
                .cloned()
                .collect();
            assert!(
                !free.is_empty(),
                "files of src/{module}/ import each other in a circle: {:?}",
                left.iter().map(|f| (f, &edges[f])).collect::<Vec<_>>()
            );
            for f in free {
                left.remove(&f);
            }
        }
    }
}

#[test]
fn the_import_reader_sees_every_form() {
    let text = "use crate::a::b;\nuse crate::{c, d::e};\nlet x = crate::f::g(); // crate::h\n";
    let names: Vec<_> = imports(text).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a", "c", "d", "f"]);
}
