//! README.md as the tests read it: the command blocks that the documented routes run.

use std::path::Path;

/// The text of README.md.
pub(crate) fn text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines of the first fenced block after the line `heading` in README.md.
pub(crate) fn block(heading: &str) -> Vec<String> {
    let readme = text();
    let rest = &readme[readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no {heading}"))..];
    let start = rest.find("\n```").unwrap();
    let body = &rest[start + 4..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let end = body.find("\n```").unwrap();
    body[..end].lines().map(str::to_string).collect()
}

/// A shell line without its trailing `# comment`.
pub(crate) fn command_of(line: &str) -> String {
    match line.find("  #") {
        Some(i) => line[..i].trim().to_string(),
        None => line.trim().to_string(),
    }
}

/// The commands of the block after `heading`: each line without its comment, blank ones left out.
pub(crate) fn commands(heading: &str) -> Vec<String> {
    block(heading)
        .iter()
        .map(|l| command_of(l))
        .filter(|l| !l.is_empty())
        .collect()
}
