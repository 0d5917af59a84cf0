//! Tests that read like the user's session: a working directory holding the profile file the
//! user wrote (`./profile.yaml`), and paperclipctl run there as they type it:
//!
//! ```ignore
//! let user = User::frank(&[format!("namespace={ns}")]).operator();
//! let out = user.run("paperclipctl install -p ./profile.yaml --dry-run").await;
//! ```

use std::path::Path;
use std::process::Output;

use serde_yaml_ng::Value;

use crate::harness::Harness;
use crate::harness::apps::{Health, KwokApp};
use crate::install::{Installed, LLM_KEY, MASTER_KEY, Setup, operator_command, text};

/// The profile file's name in the user's directory, as commands name it.
pub(crate) const PROFILE: &str = "./profile.yaml";

/// One user: a directory with their profile file, and the environment their commands run in.
pub(crate) struct User {
    dir: tempfile::TempDir,
    /// The operator's environment (the harness's kubeconfig, the Infisical identity) when set.
    operator: bool,
    env: Vec<(String, String)>,
}

impl User {
    /// A user whose `./profile.yaml` is the shipped frank profile with `changes` (`PATH=VALUE`,
    /// the value read as YAML, as `--set` reads it) written into it.
    pub(crate) fn frank(changes: &[String]) -> User {
        let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/frank.yaml");
        let mut profile: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(shipped).unwrap()).unwrap();
        for change in changes {
            let (path, value) = change
                .split_once('=')
                .unwrap_or_else(|| panic!("{change}: not PATH=VALUE"));
            set(&mut profile, path, serde_yaml_ng::from_str(value).unwrap());
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(PROFILE),
            serde_yaml_ng::to_string(&profile).unwrap(),
        )
        .unwrap();
        User {
            dir,
            operator: false,
            env: Vec::new(),
        }
    }

    /// The user of a harness release: the frank profile with what `setup` changes of it, its
    /// namespace among them, run by the operator ([`User::operator`]).
    pub(crate) fn of(setup: &Setup) -> User {
        let mut changes = setup.changes();
        changes.push(format!("namespace={}", setup.namespace));
        User::frank(&changes).operator()
    }

    /// Runs as an operator against the harness: its kubeconfig, the Infisical identity
    /// exported, no terminal, no colour.
    pub(crate) fn operator(mut self) -> User {
        self.operator = true;
        self
    }

    /// Sets `key` in the environment of every later command.
    pub(crate) fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> User {
        let value = value.as_ref().to_str().unwrap().to_string();
        self.env.push((key.to_string(), value));
        self
    }

    /// The user's directory (the commands' working directory).
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `line` as the user types it (`paperclipctl install -p ./profile.yaml --dry-run`),
    /// its words split at spaces, in the user's directory.
    pub(crate) async fn run(&self, line: &str) -> Output {
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("paperclipctl"), "{line}");
        let mut command = if self.operator {
            operator_command()
        } else {
            let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_paperclipctl"));
            command.env("NO_COLOR", "1");
            command
        };
        command
            .args(words)
            .current_dir(self.dir.path())
            .env_remove("PAPERCLIPCTL_PROFILE")
            .env_remove("PAPERCLIP_LITELLM_KEY")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command.output().await.unwrap()
    }
}

/// Sets `path` (`a.b.c`) of `document` to `value`, making the mappings on the way.
fn set(document: &mut Value, path: &str, value: Value) {
    let mut node = document;
    for key in path.split('.') {
        let mapping = node
            .as_mapping_mut()
            .unwrap_or_else(|| panic!("{path}: {key} is not in a mapping"));
        node = mapping
            .entry(Value::String(key.to_string()))
            .or_insert(Value::Mapping(Default::default()));
    }
    *node = value;
}

/// A release installed on KWOK's nodes by its user (`paperclipctl install -p ./profile.yaml`),
/// served by the harness's least app; the user's backups go to the fixture's directory.
pub(crate) struct Release {
    pub user: User,
    pub installed: Installed,
}

impl Release {
    /// Installs the release of a new [`Setup`] named after `prefix`, its app serving `health`.
    pub(crate) async fn install(prefix: &str) -> Release {
        let setup = crate::install::setup(prefix, None).await;
        let app = Harness::shared()
            .kwok_app(&setup.namespace, Health::Ok)
            .await;
        let user = user_of(&setup, &app);
        let run = user
            .run("paperclipctl install -p ./profile.yaml --timeout 60s")
            .await;
        Release {
            user,
            installed: Installed { setup, app, run },
        }
    }

    /// Like [`Release::install`], the install checked, and the fixtures' master key on the
    /// app's volume.
    pub(crate) async fn with_instance(prefix: &str) -> Release {
        let release = Release::install(prefix).await;
        let run = &release.installed.run;
        assert!(
            run.status.success(),
            "install failed:\n{}",
            text(&run.stderr)
        );
        let key = release
            .installed
            .app
            .paperclip_home()
            .join("instances/default/secrets/master.key");
        std::fs::write(&key, MASTER_KEY).unwrap();
        release
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.installed.setup.namespace
    }

    /// Runs `line` as the release's user.
    pub(crate) async fn run(&self, line: &str) -> Output {
        self.user.run(line).await
    }
}

/// The operator of `setup`'s release, with its LLM key exported and its backups in `app`'s
/// fixture directory.
pub(crate) fn user_of(setup: &Setup, app: &KwokApp) -> User {
    User::of(setup)
        .env("PAPERCLIPCTL_BACKUP_DIR", app.home.path().join("backups"))
        .env("PAPERCLIP_LITELLM_KEY", LLM_KEY)
}
