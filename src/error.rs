//! The errors a command can end with, each mapped to a documented exit code.

use miette::Diagnostic;

use crate::profile::ProfileError;
use crate::secrets::SecretsError;

/// Exit codes (documented in the README).
pub mod exit {
    pub const OK: u8 = 0;
    /// The operation failed (I/O, output, or anything not the user's input).
    pub const FAILURE: u8 = 1;
    /// Bad input: command line, profile file, `--set`, an image reference.
    pub const INVALID_INPUT: u8 = 2;
    /// The rendered release has blocking findings (lint errors).
    pub const LINT: u8 = 3;
    /// The cluster could not be reached, or refused a request (RBAC).
    pub const CLUSTER: u8 = 4;
    /// A wait failed: an object did not become healthy (fail-fast condition or timeout).
    pub const NOT_HEALTHY: u8 = 5;
    /// A preflight check failed, or what it checks (the image offers the nodes' platform) turned
    /// out false later, while pinning; nothing was written.
    pub const PREFLIGHT: u8 = 6;
    /// No release is installed in the namespace (no release record): nothing to report on.
    pub const NOT_INSTALLED: u8 = 7;
    /// SIGINT ended the run (128 + the signal's number, as shells report it).
    pub const INTERRUPTED: u8 = 130;
    /// SIGTERM ended the run.
    pub const TERMINATED: u8 = 143;
}

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Profile(#[from] ProfileError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Secrets(#[from] SecretsError),

    #[error("{message}")]
    #[diagnostic(code(paperclipctl::usage))]
    Usage {
        message: String,
        #[help]
        help: Option<String>,
    },

    #[error("the rendered release has {count} blocking finding(s); nothing was applied")]
    #[diagnostic(
        code(paperclipctl::lint),
        help("fix the profile fields named above and run the command again")
    )]
    Lint { count: usize },

    #[error("{message}")]
    #[diagnostic(code(paperclipctl::cluster))]
    Cluster {
        message: String,
        #[help]
        help: Option<String>,
    },

    #[error("{message}")]
    #[diagnostic(code(paperclipctl::wait))]
    NotHealthy {
        message: String,
        #[help]
        help: Option<String>,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Image(#[from] crate::image::ImageError),

    #[error("{count} preflight check(s) failed; nothing was written")]
    #[diagnostic(
        code(paperclipctl::preflight),
        help("each failed check above says how to fix it; run the command again afterwards")
    )]
    Preflight { count: usize },

    #[error("{message}")]
    #[diagnostic(code(paperclipctl::not_installed))]
    NotInstalled {
        message: String,
        #[help]
        help: Option<String>,
    },

    #[error("cannot write the output: {0}")]
    #[diagnostic(
        code(paperclipctl::output),
        help("check where the output goes: a closed pipe, a full disk or a lost terminal")
    )]
    Output(#[from] std::io::Error),

    #[error("cannot write {}", path.display())]
    #[diagnostic(
        code(paperclipctl::file),
        help("check that the directory exists and that you may write to it")
    )]
    WriteFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },

    #[error("cannot read {}", path.display())]
    #[diagnostic(
        code(paperclipctl::file),
        help("check that the file exists and that you may read it")
    )]
    ReadFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },

    #[error("interrupted by {signal}; temporary files were removed")]
    #[diagnostic(
        code(paperclipctl::interrupted),
        help("run the command again to do what it did not finish")
    )]
    Interrupted { signal: &'static str },

    #[error("cannot serialize the output: {0}")]
    #[diagnostic(
        code(paperclipctl::output),
        help("run the command again with --output text, and report this with the command run")
    )]
    Serialize(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Profile(_) | Error::Usage { .. } => exit::INVALID_INPUT,
            Error::Secrets(e) if e.is_input_error() => exit::INVALID_INPUT,
            Error::Secrets(_) => exit::FAILURE,
            Error::Lint { .. } => exit::LINT,
            Error::Cluster { .. } => exit::CLUSTER,
            Error::NotHealthy { .. } => exit::NOT_HEALTHY,
            Error::Preflight { .. } => exit::PREFLIGHT,
            Error::NotInstalled { .. } => exit::NOT_INSTALLED,
            Error::Image(crate::image::ImageError::Input { .. }) => exit::INVALID_INPUT,
            Error::Image(crate::image::ImageError::Cluster { .. }) => exit::CLUSTER,
            // Found while pinning, after preflight passed: the same cause as preflight's check.
            Error::Image(crate::image::ImageError::PlatformMismatch { .. }) => exit::PREFLIGHT,
            Error::Output(_)
            | Error::WriteFile { .. }
            | Error::ReadFile { .. }
            | Error::Serialize(_)
            | Error::Image(_) => exit::FAILURE,
            Error::Interrupted { signal: "SIGTERM" } => exit::TERMINATED,
            Error::Interrupted { .. } => exit::INTERRUPTED,
        }
    }

    /// The error of writing `path`, for `map_err`.
    pub fn writing(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Error::WriteFile {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The error of reading `path`, for `map_err`.
    pub fn reading(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Error::ReadFile {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn usage(message: impl Into<String>, help: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            help: Some(help.into()),
        }
    }
}

impl Error {
    pub fn cluster(message: impl Into<String>, help: impl Into<String>) -> Self {
        Error::Cluster {
            message: message.into(),
            help: Some(help.into()),
        }
    }

    pub fn not_healthy(message: impl Into<String>, help: impl Into<String>) -> Self {
        Error::NotHealthy {
            message: message.into(),
            help: Some(help.into()),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Serialize(e.to_string())
    }
}

impl From<serde_yaml_ng::Error> for Error {
    fn from(e: serde_yaml_ng::Error) -> Self {
        Error::Serialize(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageError;

    #[test]
    fn image_errors_exit_by_their_cause() {
        let input = Error::Image(ImageError::Input {
            message: "invalid image reference".into(),
            help: Some("fix it".into()),
        });
        assert_eq!(input.exit_code(), exit::INVALID_INPUT);
        let platform = Error::Image(ImageError::PlatformMismatch {
            reference: "r/app:v1".into(),
            found: vec![],
            needed: vec![],
        });
        assert_eq!(platform.exit_code(), exit::PREFLIGHT);
        let registry = Error::Image(ImageError::Registry {
            reference: "r/app:v1".into(),
            message: "timed out".into(),
        });
        assert_eq!(registry.exit_code(), exit::FAILURE);
    }

    #[test]
    fn file_errors_name_their_path() {
        let path = std::path::Path::new("/home/me/.ssh/config");
        let denied = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let read = Error::reading(path)(denied());
        assert_eq!(read.to_string(), "cannot read /home/me/.ssh/config");
        let written = Error::writing(path)(denied());
        assert_eq!(written.to_string(), "cannot write /home/me/.ssh/config");
        assert_eq!(read.exit_code(), exit::FAILURE);
    }
}
