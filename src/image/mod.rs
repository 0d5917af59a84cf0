//! The shell sidecar image: its build context (compiled into the binary, so an installed
//! paperclipctl can build without a checkout), content-derived tags, building through a Docker
//! Engine API (Docker or Podman) and pushing with a check that the registry serves the platform
//! the nodes need.
//!
//! The flow is `build` (a no-op when the engine already has the content tag) then `push` (a
//! no-op when the registry already has that tag with the same image), so both are safe to run
//! on every install; install then pins the pushed tag to its digest (`pin_shell_image`). Every
//! registry read (push, preflight, pinning) shares the logins and plain-HTTP rules of
//! `registry`.

mod build;
mod context;
mod platform;
mod push;
pub(crate) mod registry;
mod resolve;

pub use build::{Image, build, connect};
pub use context::Context;
pub use platform::{Platform, placement_platforms};
pub use push::{Pushed, Registry, push};
pub use registry::{Credentials, DockerConfigError, RegistryAuth};
pub use resolve::{Pinned, pin, pin_shell_image};

use miette::Diagnostic;

/// What can go wrong building or pushing; each says what the user can do about it.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ImageError {
    #[error("the Docker API{} failed: {message}", at(.host))]
    #[diagnostic(
        code(paperclipctl::image::engine),
        help(
            "check that Docker (or `podman system service`) is running and that DOCKER_HOST \
             points at its socket"
        )
    )]
    Engine {
        host: Option<String>,
        message: String,
    },

    #[error("building {tag} failed: {message}")]
    #[diagnostic(code(paperclipctl::image::build))]
    Build {
        tag: String,
        message: String,
        #[help]
        help: Option<String>,
    },

    #[error("pushing {reference} failed: {message}")]
    #[diagnostic(
        code(paperclipctl::image::push),
        help(
            "check the registry credentials: the Docker config's login (inline `auths` or a \
             credential helper) or --username with --password-stdin"
        )
    )]
    Push { reference: String, message: String },

    #[error("the registry cannot be read for {reference}: {message}")]
    #[diagnostic(
        code(paperclipctl::image::registry),
        help("check the registry address, its credentials, and --plain-http for an HTTP registry")
    )]
    Registry { reference: String, message: String },

    #[error(
        "{reference} offers {} but the nodes need {}",
        list(.found),
        list(.needed)
    )]
    #[diagnostic(
        code(paperclipctl::image::platform),
        help(
            "build for the nodes' platform (`paperclipctl image push --platform {}`); an image \
             built for another architecture fails at start with `exec format error`",
            list(.needed)
        )
    )]
    PlatformMismatch {
        reference: String,
        found: Vec<Platform>,
        needed: Vec<Platform>,
    },

    #[error("cannot pin {reference} to its digest: {message}")]
    #[diagnostic(code(paperclipctl::image::pin))]
    Pin {
        reference: String,
        message: String,
        #[help]
        help: String,
    },

    /// The cluster could not be asked what the image must offer (the nodes' platforms).
    #[error("{message}")]
    #[diagnostic(code(paperclipctl::image::cluster))]
    Cluster {
        message: String,
        #[help]
        help: Option<String>,
    },

    #[error("{message}")]
    #[diagnostic(code(paperclipctl::image::input))]
    Input {
        message: String,
        #[help]
        help: Option<String>,
    },
}

fn at(host: &Option<String>) -> String {
    host.as_ref()
        .map(|h| format!(" at {h}"))
        .unwrap_or_default()
}

fn list(platforms: &[Platform]) -> String {
    if platforms.is_empty() {
        return "no platform".into();
    }
    platforms
        .iter()
        .map(Platform::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
