//! The session every command that talks to the cluster runs in, built once per command: the
//! connected cluster, the release's namespace, and the progress display the core's events flow
//! to (the core never prints; the command renders what it hears and prints the result through
//! `ui`). A session takes no lock: only a release transaction does, so reads need nothing else.

use crate::cli::Global;
use crate::cluster::{self, Cluster};
use crate::error::Result;
use crate::ui::Ui;
use crate::ui::progress::{Event, Progress};

pub(super) struct Session<'u> {
    pub cluster: Cluster,
    pub namespace: String,
    pub progress: Progress,
    pub ui: &'u Ui,
}

impl<'u> Session<'u> {
    /// Connects with the kubeconfig `global` names and `context` (a guided install may have
    /// chosen another than `--context`), and says where.
    pub async fn connect(
        global: &Global,
        context: Option<&str>,
        namespace: String,
        ui: &'u Ui,
    ) -> Result<Session<'u>> {
        let progress = Progress::new(ui);
        let cluster = cluster::connect(global.kubeconfig.as_deref(), context).await?;
        progress.event(Event::Note(&format!("connected to {}", cluster.server)));
        Ok(Session {
            cluster,
            namespace,
            progress,
            ui,
        })
    }

    /// Connects as [`Session::connect`] does with `--context`, without saying so: for commands
    /// that only read (or only copy out), whose output is their answer.
    pub async fn for_reading(
        global: &Global,
        namespace: String,
        ui: &'u Ui,
    ) -> Result<Session<'u>> {
        let cluster =
            cluster::connect(global.kubeconfig.as_deref(), global.context.as_deref()).await?;
        Ok(Session {
            cluster,
            namespace,
            progress: Progress::new(ui),
            ui,
        })
    }

    pub fn client(&self) -> &kube::Client {
        &self.cluster.client
    }

    /// Where the core reports progress: this session's display.
    pub fn report(&self, event: Event<'_>) {
        self.progress.event(event);
    }
}
