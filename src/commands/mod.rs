//! One module per verb, each thin: arguments → core → report. Verbs do not import each other;
//! what several share is beside them: `session` (the connected cluster and progress every
//! command that talks to the cluster runs with), `checks` (what a deploying run makes sure of before its first
//! write), `report` (health, changes, findings) and `preview` (the install plan).

mod backup;
mod checks;
mod completions;
pub mod export;
mod guided;
mod history;
pub mod image;
mod install;
mod man;
mod plan;
mod preview;
mod profile;
mod report;
mod restore;
mod rollback;
mod session;
mod ssh;
mod status;
mod uninstall;
mod upgrade;

use crate::cli::{Cli, Command, Global};
use crate::error::{Error, Result};
use crate::profile::types::DnsLabel;
use crate::ui::Ui;

/// The profile used when none is named (no `--profile`, no PAPERCLIPCTL_PROFILE).
const DEFAULT_PROFILE: &str = "default";

pub fn run(cli: &Cli, ui: &Ui) -> Result<()> {
    match &cli.command {
        Command::Install(args) => install::run(&cli.global, args, ui),
        Command::Plan => plan::run(&cli.global, ui),
        Command::Profile(command) => profile::run(&cli.global, command, ui),
        Command::Image(args) => image::run(&cli.global, args, ui),
        Command::Status => status::run(&cli.global, ui),
        Command::History => history::run(&cli.global, ui),
        Command::Upgrade(args) => upgrade::run(&cli.global, args, ui),
        Command::Rollback(args) => rollback::run(&cli.global, args, ui),
        Command::Uninstall(args) => uninstall::run(&cli.global, args, ui),
        Command::Ssh(args) => ssh::run(&cli.global, args, ui),
        Command::Backup(args) => backup::run(&cli.global, args, ui),
        Command::Restore(args) => restore::run(&cli.global, args, ui),
        Command::Export(args) => export::run(&cli.global, args, ui),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
    }
}

/// Runs an async command body on a fresh runtime (the CLI is synchronous up to here).
fn block_on<T>(future: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Output)?
        .block_on(future)
}

/// The release's namespace: --namespace, or the selected profile's.
fn namespace(global: &Global) -> Result<String> {
    Ok(load_profile(global)?.profile.namespace.to_string())
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
    let selector = global.profile.as_deref().unwrap_or(DEFAULT_PROFILE);
    Ok(crate::profile::load(selector, &sets)?)
}
