//! `list FILE...`: verifies each archive, then prints `<path> contains: <parts>`.

use std::path::PathBuf;

use clap::Args;

use crate::archive::archive_file;
use crate::cli::Global;

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Backup archives.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

pub fn run(_g: &Global, a: ListArgs) -> anyhow::Result<i32> {
    for file in &a.files {
        let scan = archive_file::scan(file)?;
        scan.ensure_intact(&file.display().to_string())?;
        let shown = std::path::absolute(file).unwrap_or_else(|_| file.clone());
        println!(
            "{} contains: {}",
            shown.display(),
            scan.contains.names().join(", ")
        );
    }
    Ok(0)
}
