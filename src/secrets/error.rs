//! What can go wrong while provisioning secrets, each with what to do about it. No variant holds
//! a secret value: messages from Infisical are scrubbed of the value that was sent, and the
//! secret-file errors name a line, never its text.

use std::path::PathBuf;

use miette::Diagnostic;

use super::Target;

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum SecretsError {
    #[error("no Infisical credentials: {missing} is not set")]
    #[diagnostic(
        code(paperclipctl::secrets::credentials),
        help(
            "export INFISICAL_UNIVERSAL_AUTH_CLIENT_ID and INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET: \
             the universal-auth client of a machine identity that may read and create secrets \
             in the profile's project"
        )
    )]
    NoCredentials { missing: String },

    #[error("INFISICAL_API_URL={value:?} is not an http(s) URL")]
    #[diagnostic(
        code(paperclipctl::secrets::api_url),
        help(
            "set it to the Infisical site URL, e.g. https://app.infisical.com (without /api), or unset it to use the profile's secrets.store.hostApi"
        )
    )]
    BadApiUrl { value: String },

    #[error("Infisical at {host} rejected the universal-auth login ({status}: {message})")]
    #[diagnostic(
        code(paperclipctl::secrets::login),
        help(
            "check INFISICAL_UNIVERSAL_AUTH_CLIENT_ID and INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET: \
             they must be a machine identity's universal-auth client id and a current client \
             secret, and the identity's trusted IPs must include this machine"
        )
    )]
    LoginRejected {
        host: String,
        status: u16,
        message: String,
    },

    #[error("cannot reach Infisical at {host} to {operation}: {detail}")]
    #[diagnostic(
        code(paperclipctl::secrets::unreachable),
        help(
            "check secrets.store.hostApi in the profile (or INFISICAL_API_URL, which overrides it) and that this machine can reach that address"
        )
    )]
    Unreachable {
        host: String,
        operation: String,
        detail: String,
    },

    #[error("Infisical refused to {operation} in {target} ({status}: {message})")]
    #[diagnostic(code(paperclipctl::secrets::access))]
    NoAccess {
        operation: String,
        target: Target,
        status: u16,
        message: String,
        #[help]
        help: String,
    },

    #[error("Infisical at {host} has no project with the slug {project:?}")]
    #[diagnostic(
        code(paperclipctl::secrets::project),
        help(
            "set secrets.store.projectSlug to the project's slug (Project Settings in Infisical shows it; it is not the project's name)"
        )
    )]
    ProjectNotFound { host: String, project: String },

    #[error("project {project} in Infisical has no environment {environment:?}")]
    #[diagnostic(code(paperclipctl::secrets::environment))]
    EnvironmentNotFound {
        project: String,
        environment: String,
        #[help]
        help: String,
    },

    #[error("the folder {path:?} is not a valid Infisical secret path")]
    #[diagnostic(
        code(paperclipctl::secrets::path),
        help(
            "set secrets.store.secretsPath to / or to folders of letters, digits, '-' and '_', such as /paperclip"
        )
    )]
    InvalidPath { path: String },

    #[error("the folder vanished while secrets were written to {target}")]
    #[diagnostic(
        code(paperclipctl::secrets::folder),
        help(
            "run the command again: paperclipctl creates missing folders, and keys already written are kept"
        )
    )]
    FolderNotFound { target: Target },

    #[error(
        "Infisical kept rate-limiting the request to {operation} in {target}: gave up after {attempts} attempt(s){waited}"
    )]
    #[diagnostic(
        code(paperclipctl::secrets::rate_limited),
        help(
            "wait a minute and run the command again: keys already written are kept, never written twice"
        )
    )]
    RateLimited {
        operation: String,
        target: Target,
        attempts: u32,
        /// Why the retries stopped early, when Infisical asked for a wait past the deadline.
        waited: String,
    },

    #[error(
        "Infisical answered {status} to {attempts} attempt(s) to {operation} in {target}: {message}"
    )]
    #[diagnostic(
        code(paperclipctl::secrets::unavailable),
        help(
            "the Infisical server is failing; check its health (self-hosted: its logs and database) and run the command again: keys already written are kept"
        )
    )]
    Unavailable {
        operation: String,
        target: Target,
        status: u16,
        attempts: u32,
        message: String,
    },

    #[error("Infisical rejected the request to {operation} in {target} ({status}: {message})")]
    #[diagnostic(
        code(paperclipctl::secrets::rejected),
        help(
            "check the profile's secrets.store settings; if they are right, this Infisical version answers differently than expected"
        )
    )]
    Rejected {
        operation: String,
        target: Target,
        status: u16,
        message: String,
    },

    #[error("{count} required secret(s) have no value in {target} and none was provided: {keys}")]
    #[diagnostic(code(paperclipctl::secrets::missing))]
    MissingKeys {
        count: usize,
        keys: String,
        target: Target,
        #[help]
        help: String,
    },

    #[error("{}:{line}: {problem}", path.display())]
    #[diagnostic(
        code(paperclipctl::secrets::secret_file),
        help(
            "each line of a secret file is KEY=VALUE (the value may be quoted); blank lines and lines starting with # are skipped"
        )
    )]
    SecretFile {
        path: PathBuf,
        line: usize,
        problem: String,
    },

    #[error("cannot read the secret file {}: {detail}", path.display())]
    #[diagnostic(code(paperclipctl::secrets::secret_file))]
    SecretFileUnreadable { path: PathBuf, detail: String },

    #[error("cannot rotate {keys}: the profile has no such key")]
    #[diagnostic(code(paperclipctl::secrets::rotate))]
    UnknownRotate {
        keys: String,
        #[help]
        help: String,
    },

    #[error("cannot read a value for {key}: {detail}")]
    #[diagnostic(
        code(paperclipctl::secrets::prompt),
        help(
            "provide the value as an environment variable of the same name or in a --secret-file instead"
        )
    )]
    Prompt { key: String, detail: String },

    #[error("the operating system's random number source failed: {detail}")]
    #[diagnostic(code(paperclipctl::secrets::random))]
    Randomness { detail: String },
}

impl SecretsError {
    /// Whether the user's input (environment, files, profile, flags) is at fault rather than
    /// Infisical or the network; decides the exit code.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            SecretsError::NoCredentials { .. }
                | SecretsError::BadApiUrl { .. }
                | SecretsError::InvalidPath { .. }
                | SecretsError::MissingKeys { .. }
                | SecretsError::SecretFile { .. }
                | SecretsError::SecretFileUnreadable { .. }
                | SecretsError::UnknownRotate { .. }
        )
    }
}
