//! Building a context through the Docker Engine API's classic builder (`POST /build`), which
//! Docker and Podman both serve, so no BuildKit or buildx is needed on the user's machine.

use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;

use super::{Context, ImageError, Platform};

/// An image the engine holds under a content tag.
#[derive(Debug, Clone)]
pub struct Image {
    /// `<repository>:ctx-<12 hex>`.
    pub reference: String,
    /// The engine's image id: the digest of the image config, which a registry also reports
    /// for a pushed copy of this image.
    pub id: String,
    pub platform: Platform,
    /// False when the engine had the tag already and nothing was built.
    pub built: bool,
}

/// How many of the last output lines a build error shows besides the builder's error line.
const ERROR_CONTEXT_LINES: usize = 8;

/// Connects to the engine at DOCKER_HOST (unix://, tcp:// or http://), or the default socket.
pub fn connect() -> Result<Docker, ImageError> {
    let host = std::env::var("DOCKER_HOST").ok();
    Docker::connect_with_defaults().map_err(|e| ImageError::Engine {
        host,
        message: e.to_string(),
    })
}

/// Builds `context` for `platform` into `repository`, tagged by content, streaming the builder's
/// output lines to `progress`. When the engine already has the tag for that platform, nothing
/// is built.
pub async fn build(
    docker: &Docker,
    context: &Context,
    platform: &Platform,
    repository: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<Image, ImageError> {
    let tag = context.tag(repository, platform);
    let image = |id: String, built: bool| Image {
        reference: tag.clone(),
        id,
        platform: platform.clone(),
        built,
    };
    if let Some((id, found)) = inspect(docker, &tag).await?
        && found.serves(platform)
    {
        return Ok(image(id, false));
    }
    run_builder(docker, context, platform, &tag, false, progress).await?;
    let (id, found) = built(docker, &tag).await?;
    if found.serves(platform) {
        return Ok(image(id, true));
    }
    // The classic builder's layer cache can ignore the platform (Podman reuses an identical
    // `FROM scratch` build made for another architecture), so a mismatch gets one build
    // without the cache.
    progress(&format!(
        "the builder reused a {found} image for {platform}; building again without its cache"
    ));
    run_builder(docker, context, platform, &tag, true, progress).await?;
    let (id, found) = built(docker, &tag).await?;
    if found.serves(platform) {
        return Ok(image(id, true));
    }
    Err(ImageError::Build {
        tag,
        message: format!("the builder produced a {found} image instead of {platform}"),
        help: Some(
            "check that the engine can build for that platform (binfmt/qemu for RUN steps)".into(),
        ),
    })
}

/// One build through the engine; fails with the builder's error line and its last output.
async fn run_builder(
    docker: &Docker,
    context: &Context,
    platform: &Platform,
    tag: &str,
    no_cache: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<(), ImageError> {
    let options = BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t(tag)
        .platform(&platform.to_string())
        .nocache(no_cache)
        .rm(true)
        .forcerm(true)
        .build();
    let mut stream = docker.build_image(
        options,
        None,
        Some(bollard::body_full(context.tar().into())),
    );
    let mut recent: Vec<String> = Vec::new();
    let mut failure = None;
    while let Some(item) = stream.next().await {
        let message = match item {
            Ok(info) => {
                for line in info
                    .stream
                    .iter()
                    .chain(&info.status)
                    .flat_map(|s| s.lines())
                {
                    let line = line.trim_end();
                    if line.trim().is_empty() {
                        continue;
                    }
                    progress(line);
                    recent.push(line.to_string());
                }
                info.error_detail.and_then(|d| d.message)
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => Some(error),
            Err(bollard::errors::Error::DockerResponseServerError { message, .. }) => Some(message),
            Err(e) => return Err(engine_error(e)),
        };
        if let Some(message) = message {
            failure.get_or_insert(message);
        }
    }
    match failure {
        None => Ok(()),
        Some(message) => {
            let start = recent.len().saturating_sub(ERROR_CONTEXT_LINES);
            Err(ImageError::Build {
                tag: tag.to_string(),
                message: message.trim().to_string(),
                help: (start < recent.len())
                    .then(|| format!("the builder's last output:\n{}", recent[start..].join("\n"))),
            })
        }
    }
}

/// The image a successful build left under `tag`.
async fn built(docker: &Docker, tag: &str) -> Result<(String, Platform), ImageError> {
    inspect(docker, tag)
        .await?
        .ok_or_else(|| ImageError::Build {
            tag: tag.to_string(),
            message: "the builder reported success but the engine has no image under the tag"
                .into(),
            help: Some("list the engine's images (`docker images`) and build again".into()),
        })
}

/// The id and platform of the image tagged `reference`, or None when the engine has no such tag.
async fn inspect(
    docker: &Docker,
    reference: &str,
) -> Result<Option<(String, Platform)>, ImageError> {
    match docker.inspect_image(reference).await {
        Ok(image) => {
            let platform = Platform::new(
                image.os.as_deref().unwrap_or("unknown"),
                image.architecture.as_deref().unwrap_or("unknown"),
                image.variant.as_deref(),
            );
            Ok(image.id.map(|id| (id, platform)))
        }
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(engine_error(e)),
    }
}

fn engine_error(e: bollard::errors::Error) -> ImageError {
    ImageError::Engine {
        host: std::env::var("DOCKER_HOST").ok(),
        message: e.to_string(),
    }
}
