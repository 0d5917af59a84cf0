//! `paperclipctl completions SHELL`: the completion script, generated from the clap definitions
//! so it can never disagree with `--help`.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::{Error, Result};

pub fn run(args: &CompletionsArgs) -> Result<()> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "paperclipctl", &mut script);
    std::io::stdout().write_all(&script).map_err(Error::Output)
}
