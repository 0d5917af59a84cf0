//! SIGINT and SIGTERM as errors: a command that holds secrets on disk or changes the cluster
//! races its work against [`interrupted`], so an interrupted run unwinds — dropping its
//! temporary files and running its cleanup — instead of dying where it stood.

use tokio::signal::unix::{SignalKind, signal};

use crate::error::{Error, Result};

/// Resolves with [`Error::Interrupted`] once SIGINT or SIGTERM arrives. While it is awaited the
/// signals no longer end the process by themselves.
pub async fn interrupted() -> Error {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // No handler could be installed: the default action (ending the process) stays.
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    };
    Error::Interrupted { signal: name }
}

/// Runs `work` until it ends or a signal arrives; on a signal `work` is dropped.
pub async fn or_interrupted<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        biased;
        e = interrupted() => Err(e),
        done = work => done,
    }
}
