//! `paperclipctl export`: write the release as an Argo CD or Flux tree, or check a committed one.

use std::path::{Path, PathBuf};

use crate::cli::Global;
use crate::error::{Error, Result};
use crate::export::{self, Format, Options, Source};
use crate::ui::Ui;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The directory to write (or, with --check, to compare)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// The GitOps controller that applies the tree
    #[arg(long, value_enum, default_value = "argocd")]
    pub format: Format,

    /// Compare DIR with what the profile renders now; exit 5 and list the files that differ
    #[arg(long)]
    pub check: bool,

    /// Replace DIR even when it is not empty and holds no previous export
    #[arg(long)]
    pub force: bool,

    /// Argo CD: the Git repository URL the Applications read
    #[arg(long, value_name = "URL")]
    pub repo_url: Option<String>,

    /// Argo CD: the revision (branch, tag or commit) the Applications read
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,

    /// The path of DIR inside the repository (Argo CD: required; Flux: default the root)
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,

    /// Flux: the name of the GitRepository (in flux-system) holding the tree
    #[arg(long, value_name = "NAME")]
    pub git_repository: Option<String>,

    /// The Infisical key holding the database password, synced by an ExternalSecret
    #[arg(long, value_name = "KEY", default_value = "PAPERCLIP_DB_PASSWORD")]
    pub db_password_key: String,
}

pub fn run(global: &Global, args: &ExportArgs, ui: &Ui) -> Result<()> {
    let options = options(args)?;
    let loaded = super::load_profile(global)?;
    let tree = export::tree(&loaded.profile, &options)?;
    if args.check {
        return check(&args.dir, &tree, ui);
    }
    refuse_foreign(&args.dir, args.force)?;
    export::write(&args.dir, &tree).map_err(Error::writing(&args.dir))?;
    ui.print(&format!(
        "Wrote {} files to {}\n",
        tree.len(),
        args.dir.display()
    ))?;
    Ok(())
}

fn options(args: &ExportArgs) -> Result<Options> {
    let required = |value: &Option<String>, flag: &str| {
        value.clone().ok_or_else(|| {
            Error::usage(
                format!("--format argocd needs {flag}"),
                "Argo CD Applications name the repository URL (--repo-url), the revision \
                 (--revision) and the path of DIR in it (--path)",
            )
        })
    };
    let source = match args.format {
        Format::Argocd => Source::Argocd {
            repo_url: required(&args.repo_url, "--repo-url")?,
            revision: required(&args.revision, "--revision")?,
            path: required(&args.path, "--path")?,
        },
        Format::Flux => Source::Flux {
            git_repository: args.git_repository.clone().ok_or_else(|| {
                Error::usage(
                    "--format flux needs --git-repository",
                    "name the Flux GitRepository (in flux-system) that holds this tree",
                )
            })?,
            path: args.path.clone().unwrap_or_default(),
        },
    };
    Ok(Options {
        source,
        db_password_key: args.db_password_key.clone(),
    })
}

fn check(dir: &Path, tree: &export::Tree, ui: &Ui) -> Result<()> {
    let on_disk = export::read_dir(dir).map_err(Error::reading(dir))?;
    let drift = export::compare(tree, &on_disk);
    if drift.is_empty() {
        ui.print(&format!(
            "{} is what the profile renders now ({} files)\n",
            dir.display(),
            tree.len()
        ))?;
        return Ok(());
    }
    let mut lines = Vec::new();
    for (what, paths) in [
        ("differs", &drift.differing),
        ("missing", &drift.missing),
        ("extra", &drift.extra),
    ] {
        lines.extend(paths.iter().map(|p| format!("  {what}: {p}")));
    }
    Err(Error::not_healthy(
        format!(
            "{} is not what the profile renders now:\n{}",
            dir.display(),
            lines.join("\n")
        ),
        "run the same `paperclipctl export` without --check and commit the result",
    ))
}

/// A non-empty directory without the export marker may be someone's work: replacing it needs
/// --force.
fn refuse_foreign(dir: &Path, force: bool) -> Result<()> {
    if force || !dir.exists() || dir.join(export::MARKER).is_file() {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(dir).map_err(Error::reading(dir))?;
    if entries.next().is_none() {
        return Ok(());
    }
    Err(Error::usage(
        format!(
            "{} is not empty and holds no previous export ({} is missing)",
            dir.display(),
            export::MARKER
        ),
        "choose an empty or new directory, or pass --force to replace everything in it",
    ))
}
