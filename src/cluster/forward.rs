//! Port-forwards through the API server: the one way paperclipctl reaches a port inside the
//! release's pods (the app's HTTP port for `/api/health`, the shell sidecar's sshd), so nothing
//! depends on a Service address being reachable from where the CLI runs.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Portforwarder};
use tokio::io::DuplexStream;

use crate::cluster::api_error;
use crate::error::{Error, Result};

/// The forwarder behind one connection to a port of a pod.
pub struct Forward {
    forwarder: Portforwarder,
    port: u16,
}

/// Opens a connection to `port` of `pod` (in `pods`' namespace, `namespace` for messages): the
/// stream reaches the pod's port, the [`Forward`] says how it ended and ends it.
pub async fn open(
    pods: &Api<Pod>,
    pod: &str,
    namespace: &str,
    port: u16,
) -> Result<(Forward, DuplexStream)> {
    let mut forwarder = pods
        .portforward(pod, &[port])
        .await
        .map_err(|e| api_error(e, "create", "pods/portforward", Some(namespace)))?;
    let stream = forwarder.take_stream(port).ok_or_else(|| {
        Error::cluster(
            format!("the port-forward to {pod}:{port} has no stream"),
            "run again; if it persists, check the API server's health",
        )
    })?;
    Ok((Forward { forwarder, port }, stream))
}

impl Forward {
    /// Why the forwarder closed the connection (e.g. nothing listens on the port), when it says
    /// so within a moment: more telling than the client's own "connection closed". Ends the
    /// forward.
    pub async fn closed_because(mut self) -> Option<String> {
        let said = self.forwarder.take_error(self.port)?;
        let why = tokio::time::timeout(Duration::from_secs(2), said)
            .await
            .ok()
            .flatten();
        self.forwarder.abort();
        why
    }

    /// Ends the forward.
    pub fn close(self) {
        self.forwarder.abort();
    }

    /// Leaves the forwarder running in its own task for as long as its stream is used: dropping
    /// it would not end the connection, only stop serving it.
    pub fn detach(self) {
        let forwarder = self.forwarder;
        tokio::spawn(async move {
            let _ = forwarder.join().await;
        });
    }
}
