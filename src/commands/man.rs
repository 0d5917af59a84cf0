//! `paperclipctl man`: manual pages in roff, generated from the clap definitions (the same text
//! as `--help`), so packagers and `install.sh` never ship a page that has drifted.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};
use crate::error::{Error, Result};

pub fn run(args: &ManArgs) -> Result<()> {
    let command = Cli::command();
    match &args.dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .map_err(Error::Output)?;
            std::io::stdout().write_all(&page).map_err(Error::Output)
        }
        Some(dir) => write_pages(command, dir),
    }
}

/// Writes `paperclipctl.1` and `paperclipctl-VERB.1` for every verb (and nested verb), as
/// `man paperclipctl-install` is what kubectl and git users type.
fn write_pages(command: clap::Command, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::WriteFile {
        path: dir.to_path_buf(),
        source,
    })?;
    clap_mangen::generate_to(command, dir).map_err(|source| Error::WriteFile {
        path: dir.to_path_buf(),
        source,
    })
}
