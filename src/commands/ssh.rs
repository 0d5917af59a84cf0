//! `paperclipctl ssh`: a shell in the sidecar, its `~/.ssh/config` block, or (`--stdio`) the
//! connection that block's `ProxyCommand` runs through.

use std::path::PathBuf;
use std::process::Command;

use super::session::Session;
use crate::cli::{Global, SshArgs};
use crate::error::{Error, Result};
use crate::ssh::{self, HOST_ALIAS, Route, USER};
use crate::ui::Ui;

pub fn run(global: &Global, args: &SshArgs, ui: &Ui) -> Result<()> {
    let loaded = super::load_profile(global)?;
    let namespace = loaded.profile.namespace.to_string();
    let shell = loaded.profile.shell.clone().ok_or_else(|| {
        Error::usage(
            "the profile has no shell sidecar",
            "set `shell.image` in the profile (and install again) to get one",
        )
    })?;
    let route = Route::of(&shell);
    if args.stdio {
        return super::block_on(async {
            let session = Session::for_reading(global, namespace, ui).await?;
            ssh::stdio(session.client(), &session.namespace).await
        });
    }
    if args.print_config || args.write_config {
        let block = ssh::config_block(&route, &proxy_command(global)?);
        if args.print_config {
            ui.print(&block)?;
        }
        if args.write_config {
            write_config(&block, global.yes, ui)?;
        }
        return Ok(());
    }
    if let Some(mosh) = ssh::mosh_command(&shell) {
        ui.note(&format!("mosh: {mosh}"));
    }
    match route {
        Route::Direct { ip, port } => {
            use std::os::unix::process::CommandExt;
            let error = Command::new("ssh")
                .arg("-p")
                .arg(port.to_string())
                // OpenSSH reads options after the destination too: the rest is the remote command.
                .arg(format!("{USER}@{ip}"))
                .args(&args.ssh_args)
                .exec();
            Err(ssh_missing(error))
        }
        Route::PortForward => forwarded(global, namespace, &args.ssh_args, ui),
    }
}

/// Runs ssh against a local listener that forwards to the pod, and ends with ssh's exit status.
fn forwarded(global: &Global, namespace: String, extra: &[String], ui: &Ui) -> Result<()> {
    let code = super::block_on(async {
        let session = Session::for_reading(global, namespace, ui).await?;
        // ssh owns the terminal from here: a connection that failed is one line on stderr.
        let failed = |error: Error| eprintln!("paperclipctl: {error}");
        let (port, listener) = ssh::listen(session.client(), &session.namespace, failed).await?;
        // The host key is the sidecar's, whatever local port this run got: name it by alias.
        let status = tokio::process::Command::new("ssh")
            .arg("-p")
            .arg(port.to_string())
            .arg("-o")
            .arg(format!("HostKeyAlias={HOST_ALIAS}"))
            .arg(format!("{USER}@127.0.0.1"))
            .args(extra)
            .status()
            .await
            .map_err(ssh_missing)?;
        listener.abort();
        Ok(status.code().unwrap_or(255))
    })?;
    if code != 0 {
        // ssh's status is the command's: scripts running `paperclipctl ssh -- cmd` read it.
        std::process::exit(code);
    }
    Ok(())
}

fn ssh_missing(error: std::io::Error) -> Error {
    Error::usage(
        format!("cannot run ssh: {error}"),
        "install an OpenSSH client (the `ssh` command) and run again",
    )
}

/// This binary, with the flags that select the same cluster and profile, in `--stdio` mode.
/// Refuses a value with a control character: it would break out of the config line.
fn proxy_command(global: &Global) -> Result<String> {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "paperclipctl".into());
    ssh::refuse_control("the path of paperclipctl", &exe)?;
    let mut words = vec![exe];
    let mut flag = |name: &str, value: String| {
        ssh::refuse_control(name, &value)?;
        words.extend([name.to_string(), value]);
        Ok::<(), Error>(())
    };
    if let Some(kubeconfig) = &global.kubeconfig {
        flag("--kubeconfig", kubeconfig.display().to_string())?;
    }
    if let Some(context) = &global.context {
        flag("--context", context.clone())?;
    }
    if let Some(profile) = &global.profile {
        flag("--profile", profile.clone())?;
    }
    if let Some(namespace) = &global.namespace {
        flag("--namespace", namespace.clone())?;
    }
    for set in &global.sets {
        flag("--set", set.clone())?;
    }
    words.extend(["-q".into(), "ssh".into(), "--stdio".into()]);
    Ok(words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" "))
}

/// Quotes a word for the shell ssh runs `ProxyCommand` with.
fn quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Replaces `path` with `bytes` at once (a temporary file beside it, renamed over it), so a
/// failure never leaves half a config. OpenSSH refuses a config others may write, and it names
/// hosts and keys: a new file is owner-only, an existing one keeps its mode without group or
/// other write.
fn replace_privately(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let mode = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o755,
        Err(_) => 0o600,
    };
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".config.paperclipctl-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(Error::writing(dir))?;
    file.write_all(bytes).map_err(Error::writing(path))?;
    file.as_file().sync_all().map_err(Error::writing(path))?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(Error::writing(path))?;
    file.persist(path)
        .map_err(|e| Error::writing(path)(e.error))?;
    Ok(())
}

/// Writes the block into `~/.ssh/config` after a confirmation (or `--yes`).
fn write_config(block: &str, yes: bool, ui: &Ui) -> Result<()> {
    let home = std::env::var_os("HOME").map(PathBuf::from).ok_or_else(|| {
        Error::usage(
            "HOME is not set: no ~/.ssh/config to write",
            "set HOME, or paste the --print-config output into your ssh config",
        )
    })?;
    let dir = home.join(".ssh");
    // A config that links elsewhere (a dotfiles checkout) is updated where it lives.
    let path = std::fs::canonicalize(dir.join("config")).unwrap_or_else(|_| dir.join("config"));
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::reading(&path)(e)),
    };
    let updated = ssh::update_config(&existing, block);
    if updated == existing {
        ui.note(&format!("{} is up to date", path.display()));
        return Ok(());
    }
    if !yes {
        if !ui.interactive() {
            return Err(Error::usage(
                format!("writing {} needs a confirmation", path.display()),
                "add --yes to write it without asking",
            ));
        }
        let ok = dialoguer::Confirm::new()
            .with_prompt(format!(
                "Write the Host {HOST_ALIAS} block into {}?",
                path.display()
            ))
            .default(true)
            .interact()
            .map_err(|e| Error::Output(std::io::Error::other(e.to_string())))?;
        if !ok {
            return Ok(());
        }
    }
    if !dir.exists() {
        std::fs::create_dir_all(&dir).map_err(Error::writing(&dir))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(Error::writing(&dir))?;
    }
    replace_privately(&path, updated.as_bytes())?;
    ui.note(&format!(
        "wrote Host {HOST_ALIAS} into {}; connect with `ssh {HOST_ALIAS}`",
        path.display()
    ));
    Ok(())
}
