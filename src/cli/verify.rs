//! `verify FILE...`: re-computes every member's sha1; names each corrupt or missing member.
//! Prints `Verified` or `Verification failed`; exit 0 only when every archive is intact.

use std::path::PathBuf;

use clap::Args;

use crate::archive::archive_file;
use crate::cli::Global;
use crate::logging;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Backup archives.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

pub fn run(_g: &Global, a: VerifyArgs) -> anyhow::Result<i32> {
    let mut failed = false;
    for file in &a.files {
        logging::info(format!("Verifying archive {}", file.display()));
        match archive_file::scan(file) {
            Ok(scan) => {
                let problems = scan.problems();
                if problems.is_empty() {
                    logging::notice(format!("Archive {} is OK.", file.display()));
                } else {
                    failed = true;
                    for p in problems {
                        eprintln!("ERROR: {}: {p}", file.display());
                    }
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("ERROR: {e}");
            }
        }
    }
    println!(
        "{}",
        if failed {
            "Verification failed"
        } else {
            "Verified"
        }
    );
    Ok(i32::from(failed))
}
