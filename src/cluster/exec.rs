//! Commands in the release's containers: the one way paperclipctl runs anything in a pod.
//!
//! Output is streamed and input fed from a file, so a database of any size passes through
//! without being held in memory; the small answers (onboarding's outcome, a volume's usage, the
//! running version) go through the same code, so every exec names its pod and container the
//! same way when the API server refuses it.

use std::path::Path;

use indicatif::ProgressBar;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster::api_error;
use crate::error::{Error, Result};

/// The size of the chunks streamed in either direction.
const CHUNK: usize = 64 * 1024;

/// The buffer between the exec connection and this side, per stream. kube's default (1 KiB)
/// hands a dump over in tiny pieces, which caps a backup at a third of what `kubectl exec`
/// streams; a few chunks' worth keeps memory small and the connection busy.
const BUFFER: usize = 4 * CHUNK;

/// What a command reads on stdin.
pub enum Input<'a> {
    Nothing,
    Bytes(&'a [u8]),
    /// A file on this machine, streamed in chunks (counted on the progress bar), then `then`.
    File {
        path: &'a Path,
        then: &'a [u8],
    },
}

/// How a command ended, for callers that read its exit themselves ([`Container::capture`]).
pub struct Exit {
    /// It exited zero and took all of its input.
    pub succeeded: bool,
    /// The API server's word for the outcome (`Success`, `Failure`), empty when it sent none.
    pub status: String,
    /// Why it failed, as the API server put it (`command terminated with non-zero exit code…`).
    pub reason: String,
    /// What it wrote on stderr.
    pub stderr: String,
}

/// One container to run commands in.
pub struct Container<'a> {
    pub pods: &'a Api<Pod>,
    pub namespace: &'a str,
    pub pod: String,
    pub name: &'a str,
}

impl Container<'_> {
    /// Runs `sh -c script` with `args` as `$1…`, handing each chunk of stdout to `sink`. Fails
    /// with the command's stderr when it exits non-zero; `what` names it in messages.
    pub async fn run(
        &self,
        what: &str,
        script: &str,
        args: &[&str],
        input: Input<'_>,
        progress: &ProgressBar,
        sink: &mut (dyn FnMut(&[u8]) -> std::io::Result<()> + Send),
    ) -> Result<()> {
        let stderr = |text: &str| text.trim().to_string();
        self.run_reporting(what, script, args, input, progress, sink, &stderr)
            .await
    }

    /// Like [`Container::run`], with the command's stderr passed through `report` before it
    /// reaches a message (for commands whose errors quote data).
    #[allow(clippy::too_many_arguments)]
    pub async fn run_reporting(
        &self,
        what: &str,
        script: &str,
        args: &[&str],
        input: Input<'_>,
        progress: &ProgressBar,
        sink: &mut (dyn FnMut(&[u8]) -> std::io::Result<()> + Send),
        report: &(dyn Fn(&str) -> String + Sync),
    ) -> Result<()> {
        let exit = self.exec(script, args, input, progress, sink).await?;
        if !exit.succeeded {
            return Err(Error::not_healthy(
                format!(
                    "{what} failed in pod {} ({}): {}",
                    self.pod,
                    exit.reason,
                    report(&exit.stderr)
                ),
                format!(
                    "look at the container: kubectl exec -n {} {} -c {} -- sh",
                    self.namespace, self.pod, self.name
                ),
            ));
        }
        Ok(())
    }

    /// Runs `sh -c script` and returns its whole stdout and how it ended, whatever that was: for
    /// scripts whose output says more than their exit code (small answers only).
    pub async fn capture(&self, script: &str) -> Result<(String, Exit)> {
        let mut out = Vec::new();
        let exit = self
            .exec(
                script,
                &[],
                Input::Nothing,
                &ProgressBar::hidden(),
                &mut |chunk| {
                    out.extend_from_slice(chunk);
                    Ok(())
                },
            )
            .await?;
        Ok((String::from_utf8_lossy(&out).into_owned(), exit))
    }

    /// Runs `sh -c script` with `args` as `$1…`, feeding it `input` and handing each chunk of
    /// stdout to `sink`. Fails only when the exec cannot start or stdout cannot be taken; how the
    /// command itself ended is in the [`Exit`].
    async fn exec(
        &self,
        script: &str,
        args: &[&str],
        input: Input<'_>,
        progress: &ProgressBar,
        sink: &mut (dyn FnMut(&[u8]) -> std::io::Result<()> + Send),
    ) -> Result<Exit> {
        let mut command = vec!["sh", "-c", script, "sh"];
        command.extend_from_slice(args);
        let params = AttachParams::default()
            .container(self.name)
            .stdin(!matches!(input, Input::Nothing))
            .stdout(true)
            .stderr(true)
            .max_stdin_buf_size(BUFFER)
            .max_stdout_buf_size(BUFFER);
        let mut process = self
            .pods
            .exec(&self.pod, command, &params)
            .await
            .map_err(|e| api_error(e, "create", "pods/exec", Some(self.namespace)))?;
        let stdin = process.stdin();
        let stdout = process.stdout();
        let stderr = process.stderr();
        let status = process.take_status();
        let feed = async {
            let Some(mut writer) = stdin else {
                return Ok(());
            };
            match input {
                Input::Nothing => {}
                Input::Bytes(bytes) => writer.write_all(bytes).await?,
                Input::File { path, then } => {
                    let mut file = tokio::fs::File::open(path).await?;
                    let mut buffer = vec![0; CHUNK];
                    loop {
                        let n = file.read(&mut buffer).await?;
                        if n == 0 {
                            break;
                        }
                        writer.write_all(&buffer[..n]).await?;
                        progress.inc(n as u64);
                    }
                    writer.write_all(then).await?;
                }
            }
            // Not every exec closes the command's stdin on shutdown: scripts count their input.
            writer.flush().await
        };
        let read = async {
            let Some(mut reader) = stdout else {
                return Ok(());
            };
            let mut buffer = vec![0; CHUNK];
            loop {
                let n = reader.read(&mut buffer).await?;
                if n == 0 {
                    return Ok(());
                }
                sink(&buffer[..n])?;
            }
        };
        let errors = async {
            let mut text = String::new();
            if let Some(mut reader) = stderr {
                reader.read_to_string(&mut text).await.ok();
            }
            text
        };
        let (fed, read, stderr) = tokio::join!(feed, read, errors);
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        process.join().await.ok();
        read.map_err(Error::Output)?;
        let exited_zero = status
            .as_ref()
            .is_none_or(|s| s.status.as_deref() == Some("Success"));
        let status = status.unwrap_or_default();
        Ok(Exit {
            succeeded: exited_zero && fed.is_ok(),
            status: status.status.unwrap_or_default(),
            reason: status.message.unwrap_or_default(),
            stderr,
        })
    }

    /// Runs `script` and returns its whole stdout (for small answers only).
    pub async fn output(&self, what: &str, script: &str, args: &[&str]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.run(
            what,
            script,
            args,
            Input::Nothing,
            &ProgressBar::hidden(),
            &mut |chunk| {
                out.extend_from_slice(chunk);
                Ok(())
            },
        )
        .await?;
        Ok(out)
    }
}
