//! One module per verb. Each is thin: load the profile, build a plan, hand it to the printer.

mod install;
mod plan;
mod profile;

use crate::cli::{Cli, Command, Global};
use crate::error::{Error, Result};
use crate::profile::types::DnsLabel;
use crate::ui::Ui;

pub fn run(cli: &Cli, ui: &Ui) -> Result<()> {
    match &cli.command {
        Command::Install(args) => install::run(&cli.global, args, ui),
        Command::Plan => plan::run(&cli.global, ui),
        Command::Profile(command) => profile::run(&cli.global, command, ui),
    }
}

/// Loads the selected profile with `--set` and `--namespace` applied.
fn load_profile(global: &Global) -> Result<crate::profile::Loaded> {
    let mut sets = global.sets.clone();
    if let Some(namespace) = &global.namespace {
        namespace.parse::<DnsLabel>().map_err(|message| {
            Error::usage(
                format!("--namespace: {message}"),
                "namespaces are DNS labels such as paperclip-system",
            )
        })?;
        sets.push(format!("namespace={namespace}"));
    }
    Ok(crate::profile::load(&global.profile, &sets)?)
}
