//! The command line, as clap derive definitions only: help text, flags and verbs.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Install and operate Paperclip on your own Kubernetes cluster";

const LONG_ABOUT: &str = "\
Install and operate Paperclip (the AI-agent orchestrator: a Node server on port 3100 with \
PostgreSQL) on your own Kubernetes cluster.

Everything an install does comes from a profile: a built-in one (`default`, `frank`) or a YAML \
file of your own, adjusted with --set. Rendering is checked against the lessons of running \
Paperclip by hand: ReadWriteOnce volumes need the Recreate strategy, optional Secrets must be \
loaded as optional, probes must survive private mode's Host check, images must be pinned.";

const AFTER_HELP: &str = "\
Examples:
  paperclipctl plan --profile frank              what an install of the frank profile would do
  paperclipctl plan -p frank -o yaml | kubectl apply --server-side -f -
  paperclipctl install --profile ./mine.yaml --set app.service.port=8080 --dry-run
  paperclipctl profile show --profile frank      every value the profile resolves to
  paperclipctl upgrade -p frank --to sha-3494e84 backed up first, rolled back by itself on failure

Exit codes: 0 success, 1 failure, 2 invalid input (flags, profile, --set, secrets), 3 blocking
findings, 4 cluster unreachable or refused (or locked by another run), 5 not healthy, 6 preflight
failed, 7 not installed.";

#[derive(Debug, Parser)]
#[command(
    name = "paperclipctl",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every verb accepts.
#[derive(Debug, Args)]
pub struct Global {
    /// Kubeconfig file to use
    #[arg(long, global = true, env = "KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context to use (default: the current context)
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// Namespace to install into (overrides the profile's `namespace`)
    #[arg(short = 'n', long, global = true, value_name = "NAME")]
    pub namespace: Option<String>,

    /// Built-in profile name or path to a profile YAML file [default: default; `install` on a
    /// terminal without it asks for the values instead]
    #[arg(
        short = 'p',
        long,
        global = true,
        env = "PAPERCLIPCTL_PROFILE",
        value_name = "NAME|PATH"
    )]
    pub profile: Option<String>,

    /// Override one profile value, e.g. --set app.service.port=8080 (repeatable; the value is
    /// read as YAML, lists are indexed as `secrets.externalSecrets[0].optional`)
    #[arg(long = "set", global = true, value_name = "PATH=VALUE", action = ArgAction::Append)]
    pub sets: Vec<String>,

    /// Output format
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// Answer yes to every confirmation (never prompt)
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,

    /// Do not use colors (also when NO_COLOR is set)
    #[arg(long, global = true)]
    pub no_color: bool,

    /// Say more (repeat for even more)
    #[arg(short = 'v', long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Say only what is asked for, and errors
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people
    Text,
    /// Kubernetes manifests (plan) or the resolved profile (profile show)
    Yaml,
    /// One stable JSON document, for scripts
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install Paperclip on the cluster, wave by wave, and wait until it is ready
    #[command(
        long_about = "Install (or update) Paperclip on the cluster: connect, apply wave 0 (the \
                      database and the ExternalSecrets) with server-side apply, wait until it is \
                      healthy, apply wave 1 (the app and its shell sidecar), wait until it is \
                      ready, onboard the instance once, and record the revision. An install of an \
                      unchanged release changes nothing. A concurrent run is refused (a Lease in \
                      the namespace, which expires by itself if a run dies).",
        after_help = "With --dry-run, the same as `paperclipctl plan`: nothing is touched.\n\
                      At a terminal without --profile (or PAPERCLIPCTL_PROFILE) and --yes, it \
                      first asks for the profile's values, shows the plan and saves the profile \
                      to a file, so the same install runs again without questions."
    )]
    Install(InstallArgs),

    /// Show what an install would do: preflight checks, waves, objects and findings
    #[command(
        long_about = "Render the release from the profile and show what an install would do, \
                      without touching anything: the preflight checks a real run performs, the \
                      ordered waves with every object, and what the lints found.\n\n\
                      --output yaml prints the manifests as a multi-document stream that \
                      `kubectl apply --server-side -f -` accepts; --output json prints one stable \
                      document. Secrets are always rendered without values."
    )]
    Plan,

    /// Inspect profiles
    #[command(subcommand)]
    Profile(ProfileCommand),

    /// Build and push the shell sidecar image for the nodes' platform
    Image(crate::commands::image::ImageArgs),

    /// Show whether the installed release is healthy; exits 5 when it is not
    #[command(
        long_about = "Show the installed release: its revision and profile (from the latest \
                      release record), every object it applied (StatefulSet ready, Deployment \
                      available, ExternalSecrets Ready, PersistentVolumeClaims bound), its pods \
                      (ready, restarts, last termination), how full the data volumes are, and \
                      what the app's GET /api/health answers.",
        after_help = "Exit codes: 0 healthy, 5 unhealthy (the report still prints; the error \
                      names what is wrong), 7 no release in the namespace. A volume above 80% \
                      is a warning, not a failure. --output json prints one stable document."
    )]
    Status,

    /// List the recorded revisions of the release
    History,

    /// Move the release to a new app image (or a changed profile), backed up first and rolled
    /// back by itself when it does not become ready
    #[command(
        long_about = "Upgrade the installed release: resolve the target image (--to) and check it \
                      as install does (the tag exists, it offers the nodes' platforms, and every \
                      other preflight check) before anything changes; write a backup; apply the \
                      release and wait until it is ready (the app's pod is recreated, never run \
                      twice against its volume). When it does not become ready, the pods' \
                      states, logs (the crashed container's too) and the namespace's events go \
                      to a diagnostics file, and the previous revision is deployed again.",
        after_help = "--to takes `latest`, a tag of the profile's app image such as sha-3494e84 or \
                      v1.2.0, or a whole image reference. The image is pinned to the digest the \
                      registry serves, so a rollback returns to exactly what ran.\n\
                      Exit codes: 0 upgraded or already up to date, 5 the upgrade failed (rolled \
                      back, see the message), 6 preflight refused the target (nothing changed), \
                      7 no release in the namespace."
    )]
    Upgrade(UpgradeArgs),

    /// Deploy an earlier revision again (the previous one by default)
    #[command(
        long_about = "Render the profile an earlier revision applied and deploy it again, waiting \
                      as install does; it is recorded as a new revision (`rollback to N`). \
                      Without REVISION: the newest deployed revision that differs from what runs \
                      now. The database is not changed: restore the backup taken before an \
                      upgrade (`paperclipctl backup list`) when a newer version migrated it."
    )]
    Rollback(RollbackArgs),

    /// Delete the release in reverse wave order, keeping its data unless --purge
    #[command(
        long_about = "Delete what paperclipctl created in the release's namespace, in reverse wave \
                      order (the app and its sidecar, then the database, then the ExternalSecrets \
                      and their store), waiting until each object is gone. Volumes, the database \
                      password Secret and the release records are kept and listed; --purge \
                      deletes them too (and the namespace when it is left empty) after a \
                      confirmation. Objects without the managed-by label are never touched.",
        after_help = "Without a terminal, --purge needs --yes. Running it again after a finished \
                      uninstall says there is nothing to uninstall."
    )]
    Uninstall(UninstallArgs),

    /// Open a shell in the SSH sidecar (directly, or through a port-forward)
    #[command(
        long_about = "Run ssh to the shell sidecar as `agent`: at its LoadBalancer IP when the \
                      profile publishes one, otherwise through a port-forward over the Kubernetes \
                      API to the pod's sshd, kept open while ssh runs. Arguments after `--` go to \
                      ssh (options, then a remote command). The mosh command is printed when the \
                      profile publishes mosh's UDP ports.",
        after_help = "Examples:\n  \
                      paperclipctl ssh -p frank\n  \
                      paperclipctl ssh -- -o BatchMode=yes id -u\n  \
                      paperclipctl ssh --print-config >> ~/.ssh/config\n  \
                      paperclipctl ssh --write-config --yes   then: ssh paperclip-shell\n\
                      ssh's exit status is the command's."
    )]
    Ssh(SshArgs),

    /// Write the database, the master key and the instance config to one archive; list and
    /// pull backups
    #[command(
        long_about = "Write one archive (tar + zstd) of the installed release: a pg_dump of the \
                      database, streamed from the database container, the instance's \
                      secrets/master.key and config.json from the app's volume, and a \
                      manifest.json with the release revision, the images, each part's size and \
                      sha256 and every table's row count. The dump is useless without the master \
                      key, which is why they travel together.\n\n\
                      Without -f the archive goes to the local backups directory: \
                      $PAPERCLIPCTL_BACKUP_DIR, else paperclipctl/backups in the user's data \
                      directory (~/.local/share on Linux), created owner-only. `backup list` \
                      shows those archives and Paperclip's own automatic backups on the app's \
                      volume; `backup pull` copies one of the latter here.",
        after_help = "Examples:\n  \
                      paperclipctl backup                      an archive in the backups directory\n  \
                      paperclipctl backup -f ./before.tar.zst\n  \
                      paperclipctl backup list -o json\n  \
                      paperclipctl backup pull NAME            one of the app's own backups, here\n\
                      The archive holds the master key: store it as safely as the cluster's secrets.",
        args_conflicts_with_subcommands = true
    )]
    Backup(BackupArgs),

    /// Write the release as an Argo CD or Flux tree to commit, or check a committed one
    Export(crate::commands::export::ExportArgs),

    /// Put back an archive written by `backup`: database, master key and config
    #[command(
        long_about = "Check every part of the archive against its manifest (a changed or foreign \
                      archive, or a dump holding psql meta-commands such as \\!, is refused and \
                      nothing changes), name the cluster and namespace it will replace and ask \
                      (or take --yes), take the release lock, write a safety backup of what is \
                      there now, stage the archive's keys, .env, config and instance trees on the \
                      app's volume beside the live ones, scale the app to 0, replace the \
                      database's contents with the dump in one transaction, check every table's \
                      row count against the manifest, scale the app back up, and only then \
                      rename the staged files over the live ones and restart the app. When a \
                      step before that fails, the app is scaled back up with its live files \
                      untouched and the staged ones are deleted.",
        after_help = "A backup of another namespace is refused unless --other-namespace says the \
                      move is meant. Without a terminal, a restore needs --yes.\n\
                      Exit codes: 0 restored, 2 the archive was refused or no confirmation \
                      (nothing changed), 4 another run holds the release lock, 5 a step failed, \
                      130/143 interrupted (the app is scaled back up first)."
    )]
    Restore(RestoreArgs),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(
        long_about = "Print the completion script for a shell to stdout, generated from the same \
                      definitions as --help, so it always knows every verb and flag.",
        after_help = "Examples:\n  \
                      paperclipctl completions bash > ~/.local/share/bash-completion/completions/paperclipctl\n  \
                      paperclipctl completions zsh > \"${fpath[1]}/_paperclipctl\"\n  \
                      paperclipctl completions fish > ~/.config/fish/completions/paperclipctl.fish"
    )]
    Completions(CompletionsArgs),

    /// Print the manual page (roff), or write one page per verb into a directory
    #[command(
        long_about = "Print paperclipctl(1) in roff to stdout, generated from the same definitions \
                      as --help. With --dir, write paperclipctl.1 and one page per verb \
                      (paperclipctl-install.1, …) into that directory instead; install.sh does \
                      this into share/man/man1 beside the binary.",
        after_help = "Example: paperclipctl man | man -l -"
    )]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write paperclipctl.1 and a page per verb into this directory (created when missing)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,

    /// Where to write the archive [default: paperclip-backup-<namespace>-<time>.tar.zst (.age
    /// when encrypted) in the local backups directory]
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Encrypt the archive with age to this recipient: an age key (age1…), an ssh-ed25519 or
    /// ssh-rsa public key, or a file of them (e.g. ~/.ssh/id_ed25519.pub); repeatable
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    pub recipients: Vec<String>,

    /// Also back up this optional tree of the instance directory (e.g. workspaces); repeatable
    #[arg(long, value_name = "PATH")]
    pub include: Vec<String>,

    /// Leave out this tree of the instance directory (e.g. data/storage); repeatable
    #[arg(long, value_name = "PATH")]
    pub exclude: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// List the archives in the local backups directory and the app's own backups on its volume
    #[command(
        long_about = "List, newest first, the archives of the release's namespace in the local \
                      backups directory (time taken, revision, size, tables: read from each \
                      archive's manifest only) and the backups Paperclip writes by itself to \
                      data/backups on the app's volume (read through the running app pod).",
        after_help = "--output json prints one stable document: {\"local\": [...], \"volume\": \
                      [...]}, with \"volume\" null when no app pod is running. An encrypted \
                      archive is described from its manifest with -i/--identity; without it, \
                      the kinds of recipients it was encrypted to are named."
    )]
    List(ListArgs),

    /// Copy one of the app's own backups from its volume to this machine
    Pull(PullArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Read encrypted archives' manifests with this identity file: an age key file or an
    /// unencrypted SSH private key (e.g. ~/.ssh/id_ed25519)
    #[arg(short = 'i', long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The backup's file name, as `backup list` shows it
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Where to write it [default: NAME in the current directory]
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Replace the file if it exists
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive written by `paperclipctl backup`
    #[arg(value_name = "ARCHIVE")]
    pub archive: PathBuf,

    /// Check the archive and say what a restore would do, without touching anything
    #[arg(long)]
    pub dry_run: bool,

    /// Restore a backup taken in another namespace into this one (a move; refused otherwise)
    #[arg(long)]
    pub other_namespace: bool,

    /// Decrypt an encrypted archive with this identity file: an age key file or an
    /// unencrypted SSH private key (e.g. ~/.ssh/id_ed25519)
    #[arg(short = 'i', long, value_name = "FILE")]
    pub identity: Option<PathBuf>,

    /// Restore without the safety backup of what is there now (for an instance that cannot be
    /// backed up, e.g. one whose master key is lost); what the restore replaces is then gone
    #[arg(long)]
    pub no_safety_backup: bool,

    /// How long the app may take to stop, and to come back, e.g. 90s, 5m
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct SshArgs {
    /// Print a `Host paperclip-shell` block for ~/.ssh/config instead of connecting
    #[arg(long, conflicts_with = "stdio")]
    pub print_config: bool,

    /// Write (or update in place) that block in ~/.ssh/config, after a confirmation or --yes;
    /// other hosts are left as they are
    #[arg(long, conflicts_with = "stdio")]
    pub write_config: bool,

    /// Carry one connection to the sidecar's sshd over stdin/stdout (ssh's ProxyCommand)
    #[arg(long)]
    pub stdio: bool,

    /// Arguments for ssh, after `--`
    #[arg(last = true, value_name = "SSH_ARGS")]
    pub ssh_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// List what would be deleted and what kept, without touching anything
    #[arg(long)]
    pub dry_run: bool,

    /// Also delete the volumes, the database password and the release records (asks first)
    #[arg(long)]
    pub purge: bool,

    /// How long each object may take to disappear, e.g. 90s, 5m
    #[arg(long, default_value = "2m", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// The app image to move to: `latest`, a tag of the profile's image, or an image reference
    /// [default: the profile's app.image]
    #[arg(long, value_name = "IMAGE")]
    pub to: Option<String>,

    /// Show the target, the preflight and what would change, without touching anything
    #[arg(long)]
    pub dry_run: bool,

    /// How long each wave may take to become healthy before the upgrade counts as failed
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: std::time::Duration,

    /// Where the backup taken first goes [default: the backups directory, see `backup list`]
    #[arg(long, value_name = "FILE", conflicts_with = "no_backup")]
    pub backup_file: Option<PathBuf>,

    /// Upgrade without taking a backup first
    #[arg(long)]
    pub no_backup: bool,

    /// Where a failed upgrade writes its diagnostics file
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub diagnostics_dir: PathBuf,

    /// Go on although this preflight check fails (repeatable), as for install
    #[arg(long, value_name = "CHECK")]
    pub ignore_preflight: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The revision to go back to (`paperclipctl history` lists them)
    #[arg(value_name = "REVISION")]
    pub revision: Option<u32>,

    /// Show the revision it would go back to and what would change, without touching anything
    #[arg(long)]
    pub dry_run: bool,

    /// How long each wave may take to become healthy, e.g. 90s, 5m
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Render and print the plan without touching the cluster
    #[arg(long)]
    pub dry_run: bool,

    /// How long each wave may take to become healthy, e.g. 90s, 5m
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: std::time::Duration,

    /// Values for secrets Infisical lacks, as KEY=VALUE lines (environment variables of the same
    /// names win); existing values in Infisical are never overwritten
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<std::path::PathBuf>,

    /// Replace this key's existing value in Infisical (repeatable; a generated key gets a new
    /// random value, others take theirs from the environment, --secret-file or a prompt)
    #[arg(long, value_name = "KEY")]
    pub rotate: Vec<String>,

    /// Go on although this preflight check fails (repeatable; check ids are in the table and in
    /// `plan -o json`), e.g. when an image lives in a registry only the nodes can reach
    #[arg(long, value_name = "CHECK")]
    pub ignore_preflight: Vec<String>,

    /// Client id of the Infisical machine identity (universal auth); the secret comes from
    /// INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET or a prompt
    #[arg(long, env = "INFISICAL_UNIVERSAL_AUTH_CLIENT_ID", value_name = "ID")]
    pub infisical_client_id: Option<String>,
}

/// Parses `90s`, `5m`, `1h30m` (Go-style, as kubectl takes them).
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    text.parse::<crate::profile::types::GoDuration>()
        .map(|d| d.to_duration())
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Print the profile with every default and --set applied
    Show,
    /// List the built-in profiles
    List,
}
