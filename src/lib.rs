//! paperclipctl: install and operate Paperclip on your own Kubernetes cluster.
//!
//! The binary is a thin shell over this library: `cli` parses, `commands` turn arguments into
//! calls of the core and report what came back, `profile` loads and checks, `render` turns a
//! profile into objects, `preflight` lists what must hold on the cluster, `transaction` runs every
//! change of a release under its lock and records it, and `ui` prints. ARCHITECTURE.md has the
//! whole picture.

pub mod backup;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod diagnostics;
pub mod error;
pub mod export;
pub mod health;
pub mod image;
pub mod install;
pub mod onboarding;
pub mod plan;
pub mod preflight;
pub mod profile;
pub mod release;
pub mod render;
pub mod rollback;
pub mod secrets;
pub mod shell;
pub mod signal;
pub mod ssh;
pub mod status;
pub mod transaction;
pub mod ui;
pub mod uninstall;
pub mod upgrade;

pub use error::{Error, Result};

/// Runs the parsed command line.
pub fn run(cli: cli::Cli) -> Result<()> {
    let ui = ui::Ui::new(&cli.global);
    commands::run(&cli, &ui)
}
