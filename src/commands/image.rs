//! `paperclipctl image build|push`: the shell sidecar image, built for the platform of the nodes
//! the app runs on and pushed where the cluster pulls it from.

use std::io::Read;

use clap::{Args, Subcommand};
use serde_json::json;

use super::session::Session;
use crate::cli::{Global, Output};
use crate::error::{Error, Result};
use crate::image::{self, Context, Credentials, Image, Platform, Registry, RegistryAuth};
use crate::ui::Ui;

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the shell sidecar image through the Docker API at DOCKER_HOST (Docker or Podman);
    /// a no-op when an image of the same content and platform exists
    Build(BuildArgs),
    /// Build when needed, push (a no-op when the registry has the same image), and check that
    /// the registry serves the nodes' platform
    Push(PushArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Repository for the image, e.g. ghcr.io/you/paperclip-shell (default: the profile's
    /// shell.image without its tag). The tag is derived from the content: ctx-<12 hex>
    #[arg(long, value_name = "REPOSITORY")]
    pub repository: Option<String>,

    /// Platform to build for, e.g. linux/arm64 (default: the platform of the nodes the
    /// profile's app placement selects, read from the cluster)
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<Platform>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub build: BuildArgs,

    /// Registry user (default: the login for the registry in ~/.docker/config.json); the
    /// password comes from --password-stdin or PAPERCLIPCTL_REGISTRY_PASSWORD
    #[arg(long, env = "PAPERCLIPCTL_REGISTRY_USERNAME", value_name = "USER")]
    pub username: Option<String>,

    /// Read the registry password from standard input (never pass it as an argument)
    #[arg(long, requires = "username")]
    pub password_stdin: bool,

    /// Speak plain HTTP to the registry (loopback registries always get it)
    #[arg(long)]
    pub plain_http: bool,
}

pub fn run(global: &Global, args: &ImageArgs, ui: &Ui) -> Result<()> {
    super::block_on(async {
        match &args.command {
            ImageCommand::Build(build) => {
                let target = target(global, build, ui).await?;
                let image = build_image(&image::connect()?, &target, ui).await?;
                let document = json!({
                    "reference": image.reference,
                    "id": image.id,
                    "platform": image.platform.to_string(),
                    "built": image.built,
                });
                let verb = if image.built {
                    "built"
                } else {
                    "already built"
                };
                finish(ui, &document, &format!("{} ({verb})", image.reference))
            }
            ImageCommand::Push(push) => {
                let target = target(global, &push.build, ui).await?;
                let registry = registry(push, &target.repository)?;
                let docker = image::connect()?;
                let image = build_image(&docker, &target, ui).await?;
                let pushed = image::push(&docker, &image, &registry, &target.needed, &mut |line| {
                    progress(ui, line)
                })
                .await?;
                let platforms: Vec<String> =
                    pushed.platforms.iter().map(Platform::to_string).collect();
                let document = json!({
                    "reference": pushed.reference,
                    "digest": pushed.digest,
                    "platforms": platforms,
                    "pushed": pushed.pushed,
                });
                let verb = if pushed.pushed {
                    "pushed"
                } else {
                    "already in the registry"
                };
                ui.note(&format!(
                    "use it with: --set shell.image={} (serves {})",
                    pushed.reference,
                    platforms.join(", ")
                ));
                finish(
                    ui,
                    &document,
                    &format!("{} ({verb}, {})", pushed.reference, pushed.digest),
                )
            }
        }
    })
}

/// Where the image goes and which platforms it must serve.
struct Target {
    repository: String,
    /// What the nodes run; the image is built for the first and must serve all.
    needed: Vec<Platform>,
}

async fn target(global: &Global, args: &BuildArgs, ui: &Ui) -> Result<Target> {
    let profile = match (&args.repository, &args.platform) {
        (Some(_), Some(_)) => None,
        _ => Some(super::load_profile(global)?.profile),
    };
    let repository = match (&args.repository, &profile) {
        (Some(repository), _) => valid_repository(repository)?,
        (None, Some(profile)) => {
            let shell = profile.shell.as_ref().ok_or_else(|| {
                Error::usage(
                    format!(
                        "profile {} has no shell sidecar to take a repository from",
                        profile.name
                    ),
                    "pass --repository, e.g. --repository ghcr.io/you/paperclip-shell",
                )
            })?;
            let reference = shell.image.reference();
            format!("{}/{}", reference.registry(), reference.repository())
        }
        (None, None) => unreachable!("the profile is loaded when --repository is missing"),
    };
    let needed = match (&args.platform, &profile) {
        (Some(platform), _) => vec![platform.clone()],
        (None, Some(profile)) => {
            let namespace = profile.namespace.to_string();
            let session = Session::for_reading(global, namespace, ui).await?;
            image::placement_platforms(session.client(), &profile.app.placement.node_selector)
                .await?
        }
        (None, None) => unreachable!("the profile is loaded when --platform is missing"),
    };
    if needed.len() > 1 {
        let list: Vec<String> = needed.iter().map(Platform::to_string).collect();
        return Err(Error::usage(
            format!(
                "the app's nodes run {}; one image serves one platform",
                list.join(" and ")
            ),
            "pin the app to one architecture (app.placement.nodeSelector kubernetes.io/arch) or \
             pass --platform",
        ));
    }
    Ok(Target { repository, needed })
}

/// A repository as given: a registry path without tag or digest, which the content tag is
/// appended to.
fn valid_repository(repository: &str) -> Result<String> {
    let tagged = repository.contains('@')
        || repository
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'));
    let parses = format!("{repository}:tag")
        .parse::<oci_client::Reference>()
        .is_ok();
    if tagged || !parses || repository.chars().any(char::is_whitespace) {
        return Err(Error::usage(
            format!("invalid repository {repository:?}"),
            "name a repository without tag or digest, in lower case, such as \
             ghcr.io/you/paperclip-shell (the tag is derived from the image's content)",
        ));
    }
    Ok(repository.to_string())
}

async fn build_image(docker: &bollard::Docker, target: &Target, ui: &Ui) -> Result<Image> {
    let platform = &target.needed[0];
    ui.note(&format!("building the shell image for {platform}"));
    Ok(image::build(
        docker,
        &Context::shell_image(),
        platform,
        &target.repository,
        &mut |line| progress(ui, line),
    )
    .await?)
}

/// The registry login: --username with its password, else the Docker config's for the
/// repository's registry, else anonymous.
fn registry(args: &PushArgs, repository: &str) -> Result<Registry> {
    let credentials = match &args.username {
        Some(username) => {
            let password = if args.password_stdin {
                let mut password = String::new();
                std::io::stdin().read_to_string(&mut password)?;
                password.trim_end_matches(['\r', '\n']).to_string()
            } else {
                std::env::var("PAPERCLIPCTL_REGISTRY_PASSWORD").map_err(|_| {
                    Error::usage(
                        "--username needs a password",
                        "pipe it to --password-stdin or set PAPERCLIPCTL_REGISTRY_PASSWORD",
                    )
                })?
            };
            Some(Credentials::new(username, password))
        }
        None => {
            let reference: oci_client::Reference = repository.parse().map_err(|e| {
                Error::usage(
                    format!("invalid repository {repository:?}: {e}"),
                    "name it like ghcr.io/you/paperclip-shell",
                )
            })?;
            RegistryAuth::from_docker_config()
                .map_err(|e| {
                    Error::usage(
                        e.to_string(),
                        "fix the file, or pass --username and --password-stdin",
                    )
                })?
                .get(reference.registry())
        }
    };
    Ok(Registry {
        credentials,
        plain_http: args.plain_http,
    })
}

/// Builder and push output, on stderr so stdout stays the result.
fn progress(ui: &Ui, line: &str) {
    ui.note(&ui.dim(line));
}

fn finish(ui: &Ui, document: &serde_json::Value, text: &str) -> Result<()> {
    match ui.output {
        Output::Json => ui.print(&(serde_json::to_string_pretty(document)? + "\n"))?,
        Output::Text | Output::Yaml => ui.print(&format!("{text}\n"))?,
    }
    Ok(())
}
