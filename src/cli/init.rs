//! `init`: a new, empty repository (directory 0700, files 0600).

use clap::Args;

use crate::cli::{output, repo, Global};
use crate::store::Repository;

#[derive(Args, Debug)]
pub struct InitArgs {}

pub(super) fn init(g: &Global, _a: InitArgs) -> anyhow::Result<i32> {
    let location = repo::location(g)?;
    Repository::init_at(&location)?;
    output::summary(format!("created repository at {location}"));
    Ok(0)
}
