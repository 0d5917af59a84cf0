//! Infisical's HTTP API as the double serves it: routing, authentication, request validation and
//! the response and error shapes of the real server (`{reqId, statusCode, message, error}`).

use serde_json::{Map, Value, json};

use crate::store::{self, Environment, Identity, Project, Secret};

/// One HTTP request, already read off the wire.
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub bearer: Option<String>,
    pub body: Vec<u8>,
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        Reply {
            status: 200,
            headers: Vec::new(),
            body,
        }
    }
}

/// What a request touches, so that injected faults and the request log can be narrowed to one
/// test's project or identity while other tests share the double.
#[derive(Default)]
pub struct Scope {
    pub project: Option<String>,
    pub client_id: Option<String>,
}

pub struct ApiError {
    status: u16,
    error: String,
    message: Value,
    headers: Vec<(&'static str, String)>,
}

impl ApiError {
    fn new(status: u16, error: &str, message: impl Into<Value>) -> ApiError {
        ApiError {
            status,
            error: error.to_string(),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message.into())
    }

    fn not_found(message: impl Into<String>, name: &str) -> ApiError {
        ApiError::new(404, name, message.into())
    }

    fn unauthorized(message: &str) -> ApiError {
        ApiError::new(401, "UnauthorizedError", message)
    }

    /// What Infisical answers when the identity is not a member of the project: the reason is
    /// in `error`, the message is the generic one.
    fn not_a_member(project_id: &str) -> ApiError {
        ApiError::new(
            403,
            &format!("Identity is not a member of the specified project with ID '{project_id}'"),
            "You are not allowed to access this resource",
        )
    }

    /// A request-schema failure: Infisical answers 422 with the zod issues as the message.
    fn invalid(field: &str, expected: &str, received: &str) -> ApiError {
        let message = if received == "undefined" {
            "Required".to_string()
        } else {
            format!("Expected {expected}, received {received}")
        };
        let issue = json!({
            "code": "invalid_type",
            "expected": expected,
            "received": received,
            "path": [field],
            "message": message,
        });
        ApiError::new(422, "ValidationFailure", json!([issue]))
    }

    /// The answer of Infisical's rate limiter, with the headers @fastify/rate-limit adds.
    pub fn rate_limited(retry_after_secs: u64) -> ApiError {
        let mut error = ApiError::new(
            429,
            "RateLimitExceeded",
            format!("Rate limit exceeded. Please try again in {retry_after_secs} seconds"),
        );
        error.headers = vec![
            ("retry-after", retry_after_secs.to_string()),
            ("x-ratelimit-remaining", "0".to_string()),
            ("x-ratelimit-reset", retry_after_secs.to_string()),
        ];
        error
    }

    /// A server-side failure with the given status.
    pub fn server(status: u16) -> ApiError {
        match status {
            500 => ApiError::new(500, "InternalServerError", "Something went wrong"),
            504 => ApiError::new(504, "GatewayTimeoutError", "Timeout error"),
            _ => ApiError::new(
                status,
                "Error",
                format!("Injected failure with status {status}"),
            ),
        }
    }

    pub fn into_reply(self) -> Reply {
        let body = json!({
            "reqId": format!("req-{}", store::random_token(14)),
            "statusCode": self.status,
            "message": self.message,
            "error": self.error,
        });
        Reply {
            status: self.status,
            headers: self.headers,
            body,
        }
    }
}

type Result<T> = std::result::Result<T, ApiError>;

/// The routes that answer without an access token.
enum Route<'a> {
    Status,
    Login,
    RenewToken,
    RevokeToken,
    Authenticated(Authenticated<'a>),
}

/// The routes that need a bearer access token.
enum Authenticated<'a> {
    CreateProject,
    ProjectBySlug(&'a str),
    ListSecrets,
    GetSecret(&'a str),
    CreateSecret(&'a str),
    UpdateSecret(&'a str),
    DeleteSecret(&'a str),
    CreateFolder,
    ListFolders,
}

fn route<'a>(method: &str, path: &'a str) -> Option<Route<'a>> {
    use Authenticated as A;
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let authenticated = match (method, segments.as_slice()) {
        ("GET", ["api", "status"]) => return Some(Route::Status),
        ("POST", ["api", "v1", "auth", "universal-auth", "login"]) => return Some(Route::Login),
        ("POST", ["api", "v1", "auth", "token", "renew"]) => return Some(Route::RenewToken),
        ("POST", ["api", "v1", "auth", "token", "revoke"]) => return Some(Route::RevokeToken),
        ("POST", ["api", "v1", "projects"] | ["api", "v2", "workspace"]) => A::CreateProject,
        // The project-by-slug route moved between Infisical versions; clients (External Secrets
        // Operator among them) try each, so all three answer.
        (
            "GET",
            ["api", "v1", "projects", "slug", slug]
            | ["api", "v1", "workspace", "slug", slug]
            | ["api", "v2", "workspace", slug],
        ) => A::ProjectBySlug(slug),
        ("GET", ["api", "v3", "secrets", "raw"]) => A::ListSecrets,
        ("GET", ["api", "v3", "secrets", "raw", name]) => A::GetSecret(name),
        ("POST", ["api", "v3", "secrets", "raw", name]) => A::CreateSecret(name),
        ("PATCH", ["api", "v3", "secrets", "raw", name]) => A::UpdateSecret(name),
        ("DELETE", ["api", "v3", "secrets", "raw", name]) => A::DeleteSecret(name),
        ("POST", ["api", "v1" | "v2", "folders"]) => A::CreateFolder,
        ("GET", ["api", "v1" | "v2", "folders"]) => A::ListFolders,
        _ => return None,
    };
    Some(Route::Authenticated(authenticated))
}

/// Every access token lives this long, Infisical's default for universal auth.
const TOKEN_TTL_SECS: u64 = 2_592_000;

pub struct Double {
    identities: Vec<Identity>,
    /// Live access tokens and the identity each was issued to.
    tokens: Vec<(String, String)>,
    projects: Vec<Project>,
    org_id: String,
}

impl Double {
    pub fn new(client_id: String, client_secret: String) -> Double {
        let mut double = Double {
            identities: Vec::new(),
            tokens: Vec::new(),
            projects: Vec::new(),
            org_id: store::new_id(),
        };
        double.identities.push(Identity {
            id: store::new_id(),
            client_id,
            client_secret,
        });
        double
    }

    /// Adds a machine identity with fresh universal-auth credentials; it sees only the projects
    /// it creates.
    pub fn add_identity(&mut self) -> &Identity {
        self.identities.push(Identity {
            id: store::new_id(),
            client_id: store::new_id(),
            client_secret: store::random_token(64),
        });
        &self.identities[self.identities.len() - 1]
    }

    pub fn handle(&mut self, call: &Call) -> Reply {
        let Some(route) = route(&call.method, &call.path) else {
            // Fastify's own answer for an unknown route, which is what clients probing for a
            // route see.
            return Reply {
                status: 404,
                headers: Vec::new(),
                body: json!({
                    "message": format!("Route {}:{} not found", call.method, call.path),
                    "error": "Not Found",
                    "statusCode": 404,
                }),
            };
        };
        match self.dispatch(route, call) {
            Ok(body) => Reply::ok(body),
            Err(error) => error.into_reply(),
        }
    }

    fn dispatch(&mut self, route: Route, call: &Call) -> Result<Value> {
        use Authenticated as A;
        let route = match route {
            Route::Status => return Ok(json!({ "date": store::now(), "message": "Ok" })),
            Route::Login => return self.login(call),
            Route::RenewToken => return self.renew_token(call),
            Route::RevokeToken => return self.revoke_token(call),
            Route::Authenticated(route) => route,
        };
        let identity = self.authenticate(call)?;
        match route {
            A::CreateProject => self.create_project(&identity, call),
            A::ProjectBySlug(slug) => {
                let project = self.project_by_slug(&identity, slug)?;
                Ok(project_json(project, &self.org_id))
            }
            A::ListSecrets => self.list_secrets(&identity, call),
            A::GetSecret(name) => self.get_secret(&identity, call, name),
            A::CreateSecret(name) => self.create_secret(&identity, call, name),
            A::UpdateSecret(name) => self.update_secret(&identity, call, name),
            A::DeleteSecret(name) => self.delete_secret(&identity, call, name),
            A::CreateFolder => self.create_folder(&identity, call),
            A::ListFolders => self.list_folders(&identity, call),
        }
    }

    /// The project and identity a request is about, as far as they can be told without
    /// answering it.
    pub fn scope(&self, call: &Call) -> Scope {
        let body = body_object(call);
        let client_id = match call.bearer.as_deref() {
            Some(token) => self
                .token_owner(token)
                .and_then(|id| self.identities.iter().find(|i| i.id == id))
                .map(|i| i.client_id.clone()),
            None => body
                .get("clientId")
                .and_then(Value::as_str)
                .map(str::to_string),
        };
        let slug = match route(&call.method, &call.path) {
            Some(Route::Authenticated(Authenticated::ProjectBySlug(slug))) => {
                Some(slug.to_string())
            }
            _ => None,
        };
        let reference = ["workspaceId", "projectId"]
            .iter()
            .find_map(|key| query(call, key).or_else(|| body_str(&body, key)))
            .or_else(|| {
                ["workspaceSlug", "projectSlug"]
                    .iter()
                    .find_map(|key| query(call, key).or_else(|| body_str(&body, key)))
            })
            .or(slug);
        // Faults are registered by project id; requests may name the project by slug.
        let project = reference.map(|reference| {
            self.projects
                .iter()
                .find(|p| p.id == reference || p.slug == reference)
                .map_or(reference.clone(), |p| p.id.clone())
        });
        Scope { project, client_id }
    }

    fn token_owner(&self, token: &str) -> Option<&str> {
        self.tokens
            .iter()
            .find(|(t, _)| t == token)
            .map(|(_, id)| id.as_str())
    }

    fn authenticate(&self, call: &Call) -> Result<String> {
        let Some(token) = call.bearer.as_deref() else {
            return Err(ApiError::unauthorized("Token missing"));
        };
        self.token_owner(token)
            .map(str::to_string)
            .ok_or_else(|| ApiError::unauthorized("You are not allowed to access this resource"))
    }

    fn issue_token(&mut self, identity_id: String) -> Value {
        let token = store::random_token(64);
        self.tokens.push((token.clone(), identity_id));
        token_json(&token)
    }

    fn login(&mut self, call: &Call) -> Result<Value> {
        let body = body_object(call);
        let client_id = required_str(&body, "clientId")?;
        let client_secret = required_str(&body, "clientSecret")?;
        let identity = self
            .identities
            .iter()
            .find(|i| i.client_id == client_id && i.client_secret == client_secret)
            .ok_or_else(|| ApiError::unauthorized("Invalid credentials"))?;
        let id = identity.id.clone();
        Ok(self.issue_token(id))
    }

    fn renew_token(&mut self, call: &Call) -> Result<Value> {
        let body = body_object(call);
        let token = required_str(&body, "accessToken")?;
        if self.token_owner(&token).is_none() {
            return Err(ApiError::unauthorized(
                "You are not allowed to access this resource",
            ));
        }
        // Renewal keeps the token and restarts its lifetime; tokens here never expire, so the
        // answer is all there is to it.
        Ok(token_json(&token))
    }

    fn revoke_token(&mut self, call: &Call) -> Result<Value> {
        let body = body_object(call);
        let token = required_str(&body, "accessToken")?;
        self.tokens.retain(|(t, _)| *t != token);
        Ok(json!({ "message": "Successfully revoked access token" }))
    }

    fn create_project(&mut self, identity: &str, call: &Call) -> Result<Value> {
        let body = body_object(call);
        let name = required_str(&body, "projectName")?;
        let description = optional_str(&body, "projectDescription")?;
        let slug = match optional_str(&body, "slug")? {
            Some(slug) if (5..=36).contains(&slug.len()) && slug == slugify(&slug) => slug,
            Some(slug) => return Err(ApiError::invalid("slug", "slug", &format!("'{slug}'"))),
            None => slugify(&format!("{name}-{}", store::random_token(4))),
        };
        if self.projects.iter().any(|p| p.slug == slug) {
            return Err(ApiError::bad_request(format!(
                "Project with slug '{slug}' already exists"
            )));
        }
        let project = Project::new(identity, &name, slug, description);
        let json = project_json(&project, &self.org_id);
        self.projects.push(project);
        Ok(json!({ "project": json }))
    }

    fn project_by_slug(&self, identity: &str, slug: &str) -> Result<&Project> {
        let project = self
            .projects
            .iter()
            .find(|p| p.slug == slug)
            .ok_or_else(|| {
                ApiError::not_found(format!("Project with slug '{slug}' not found"), "NotFound")
            })?;
        if project.owner != identity {
            return Err(ApiError::not_a_member(&project.id));
        }
        Ok(project)
    }

    /// Resolves `workspaceId`, or else a project slug, to a project the identity may use.
    fn project_mut(
        &mut self,
        identity: &str,
        id: Option<String>,
        slug: Option<String>,
    ) -> Result<&mut Project> {
        let id = match (id, slug) {
            (Some(id), _) => id,
            (None, Some(slug)) => self.project_by_slug(identity, &slug)?.id.clone(),
            (None, None) => {
                return Err(ApiError::bad_request(
                    "You must provide projectSlug or workspaceId",
                ));
            }
        };
        self.projects
            .iter_mut()
            .find(|p| p.id == id && p.owner == identity)
            .ok_or_else(|| ApiError::not_a_member(&id))
    }

    fn list_secrets(&mut self, identity: &str, call: &Call) -> Result<Value> {
        let project = self.project_mut(
            identity,
            query(call, "workspaceId"),
            query(call, "workspaceSlug"),
        )?;
        let environment = query(call, "environment")
            .ok_or_else(|| ApiError::bad_request("Missing project id or environment"))?;
        let path = secret_path(query(call, "secretPath"))?;
        let recursive = query_flag(call, "recursive")?;
        // References are not expanded (`expandSecretReferences` is accepted and ignored) and
        // there are no secret imports: values come back as stored.
        query_flag(call, "expandSecretReferences")?;
        query_flag(call, "include_imports")?;
        let secrets: Vec<Value> = match project.environment(&environment) {
            Some(env) => env
                .secrets_under(&path, recursive)
                .into_iter()
                .map(|s| read_secret_json(&project.id, &environment, s))
                .collect(),
            // Infisical lists nothing, rather than failing, for an environment or a path that
            // does not exist.
            None => Vec::new(),
        };
        Ok(json!({ "secrets": secrets, "imports": [] }))
    }

    fn get_secret(&mut self, identity: &str, call: &Call, name: &str) -> Result<Value> {
        let project = self.project_mut(
            identity,
            query(call, "workspaceId"),
            query(call, "workspaceSlug"),
        )?;
        let environment = query(call, "environment")
            .ok_or_else(|| ApiError::bad_request("Missing environment"))?;
        let path = secret_path(query(call, "secretPath"))?;
        let kind = query(call, "type").unwrap_or_else(|| "shared".to_string());
        secret_type(&kind)?;
        query_flag(call, "expandSecretReferences")?;
        query_flag(call, "include_imports")?;
        let version = match query(call, "version") {
            Some(v) => Some(
                v.parse::<u32>()
                    .map_err(|_| ApiError::invalid("version", "number", "nan"))?,
            ),
            None => None,
        };
        let env = project
            .environment(&environment)
            .filter(|env| env.folders.contains_key(&path))
            .ok_or_else(|| folder_not_found(&path, &environment, "GetSecretByName"))?;
        // Only the current version is kept, so an older one is as absent as a missing secret.
        let secret = env
            .secret(&path, name)
            .filter(|s| s.kind == kind && version.is_none_or(|v| v == s.version))
            .ok_or_else(|| {
                ApiError::not_found(format!("Secret with name '{name}' not found"), "NotFound")
            })?;
        Ok(json!({ "secret": read_secret_json(&project.id, &environment, secret) }))
    }

    fn create_secret(&mut self, identity: &str, call: &Call, name: &str) -> Result<Value> {
        let body = body_object(call);
        let target = Target::from_body(&body)?;
        let value = secret_value(required_raw_str(&body, "secretValue")?);
        let comment = optional_str(&body, "secretComment")?.unwrap_or_default();
        let skip_multiline_encoding =
            optional_bool(&body, "skipMultilineEncoding")?.unwrap_or(false);
        let (project_id, env) = self.folder_environment(identity, &target, "CreateSecret")?;
        let Target {
            environment,
            path,
            kind,
            ..
        } = target;
        if kind == "personal" {
            return Err(ApiError::bad_request(
                "Must be user to create personal secret",
            ));
        }
        if env.secret(&path, name).is_some() {
            return Err(ApiError::bad_request("Secret already exist"));
        }
        let now = store::now();
        let secret = Secret {
            id: store::new_id(),
            key: name.to_string(),
            value,
            comment,
            version: 1,
            kind,
            skip_multiline_encoding,
            path,
            created_at: now.clone(),
            updated_at: now,
        };
        let json = secret_json(&project_id, &environment, &secret);
        env.secrets.push(secret);
        Ok(json!({ "secret": json }))
    }

    fn update_secret(&mut self, identity: &str, call: &Call, name: &str) -> Result<Value> {
        let body = body_object(call);
        let target = Target::from_body(&body)?;
        let value = optional_raw_str(&body, "secretValue")?.map(secret_value);
        let comment = optional_raw_str(&body, "secretComment")?;
        let new_name = optional_raw_str(&body, "newSecretName")?;
        let skip_multiline_encoding = optional_bool(&body, "skipMultilineEncoding")?;
        if new_name.as_deref() == Some("") {
            return Err(ApiError::bad_request("New secret name cannot be empty"));
        }
        let (project_id, env) = self.folder_environment(identity, &target, "UpdateSecret")?;
        let Target {
            environment,
            path,
            kind,
            ..
        } = target;
        if kind == "personal" {
            return Err(ApiError::bad_request(
                "Must be user to create personal secret",
            ));
        }
        if env.secret(&path, name).is_none() {
            return Err(ApiError::not_found(
                format!("Secret with name {name} not found"),
                "NotFound",
            ));
        }
        if new_name
            .as_deref()
            .is_some_and(|n| env.secret(&path, n).is_some())
        {
            return Err(ApiError::bad_request(
                "Secret with the new name already exist",
            ));
        }
        let secret = env.secret_mut(&path, name).expect("checked above");
        if let Some(new_name) = new_name {
            secret.key = new_name;
        }
        if let Some(value) = &value {
            secret.value = value.clone();
        }
        if let Some(comment) = &comment {
            secret.comment = comment.clone();
        }
        if let Some(skip) = skip_multiline_encoding {
            secret.skip_multiline_encoding = skip;
        }
        secret.version += 1;
        secret.updated_at = store::now();
        let mut json = secret_json(&project_id, &environment, secret);
        // Infisical echoes the value and comment of the request, not the stored ones: an update
        // that leaves the value alone answers with an empty value.
        json["secretValue"] = value.unwrap_or_default().into();
        json["secretComment"] = comment.unwrap_or_default().into();
        json["secretValueHidden"] = false.into();
        Ok(json!({ "secret": json }))
    }

    fn delete_secret(&mut self, identity: &str, call: &Call, name: &str) -> Result<Value> {
        let target = Target::from_body(&body_object(call))?;
        let (project_id, env) = self.folder_environment(identity, &target, "DeleteSecret")?;
        let Target {
            environment,
            path,
            kind,
            ..
        } = target;
        if kind == "personal" {
            return Err(ApiError::bad_request(
                "Must be user to delete personal secret",
            ));
        }
        let index = env
            .secrets
            .iter()
            .position(|s| s.path == path && s.key == name)
            .ok_or_else(|| ApiError::not_found("Secret not found", "NotFound"))?;
        let secret = env.secrets.remove(index);
        let mut json = secret_json(&project_id, &environment, &secret);
        json["secretValueHidden"] = false.into();
        Ok(json!({ "secret": json }))
    }

    /// The environment a secret write lands in, once the identity's access to the project and
    /// the target folder's existence are checked, with the project's id.
    fn folder_environment(
        &mut self,
        identity: &str,
        target: &Target,
        operation: &str,
    ) -> Result<(String, &mut Environment)> {
        let project = self.project_mut(identity, target.id.clone(), target.slug.clone())?;
        let project_id = project.id.clone();
        let env = project
            .environment_mut(&target.environment)
            .filter(|env| env.folders.contains_key(&target.path))
            .ok_or_else(|| folder_not_found(&target.path, &target.environment, operation))?;
        Ok((project_id, env))
    }

    fn create_folder(&mut self, identity: &str, call: &Call) -> Result<Value> {
        let body = body_object(call);
        // v1 names the project `workspaceId` and the parent `directory`; v2 `projectId` and `path`.
        let id = match optional_str(&body, "projectId")? {
            Some(id) => Some(id),
            None => optional_str(&body, "workspaceId")?,
        };
        let id = id.ok_or_else(|| ApiError::invalid("projectId", "string", "undefined"))?;
        let environment = required_str(&body, "environment")?;
        let name = required_str(&body, "name")?;
        let parent = match optional_str(&body, "path")? {
            Some(path) => Some(path),
            None => optional_str(&body, "directory")?,
        };
        let parent = secret_path(parent)?;
        let description = optional_str(&body, "description")?;
        if !is_folder_name(&name) {
            return Err(ApiError::bad_request("Invalid folder name"));
        }
        let project = self.project_mut(identity, Some(id), None)?;
        let project_id = project.id.clone();
        let env = project.environment_mut(&environment).ok_or_else(|| {
            ApiError::not_found(
                format!("Environment with slug '{environment}' in project with ID '{project_id}' not found"),
                "NotFound",
            )
        })?;
        let path = env.create_folder(&parent, &name, description);
        let mut json = folder_json(&env.folders[&path], &env.id);
        json["path"] = path.into();
        Ok(json!({ "folder": json }))
    }

    fn list_folders(&mut self, identity: &str, call: &Call) -> Result<Value> {
        let id = query(call, "projectId")
            .or_else(|| query(call, "workspaceId"))
            .ok_or_else(|| ApiError::invalid("projectId", "string", "undefined"))?;
        let environment = query(call, "environment")
            .ok_or_else(|| ApiError::invalid("environment", "string", "undefined"))?;
        let parent = secret_path(query(call, "path").or_else(|| query(call, "directory")))?;
        let recursive = query_flag(call, "recursive")?;
        let project = self.project_mut(identity, Some(id), None)?;
        let folders: Vec<Value> = match project.environment(&environment) {
            Some(env) => env
                .folders
                .iter()
                .filter(|(path, _)| {
                    let direct = path
                        .rsplit_once('/')
                        .map(|(p, _)| if p.is_empty() { "/" } else { p });
                    store::is_below(path, &parent) && (recursive || direct == Some(parent.as_str()))
                })
                .map(|(path, folder)| {
                    let mut json = folder_json(folder, &env.id);
                    if recursive {
                        json["relativePath"] = path.clone().into();
                    }
                    json
                })
                .collect(),
            None => Vec::new(),
        };
        Ok(json!({ "folders": folders }))
    }
}

/// Folder names, and so the segments of a secret path: letters, digits, dashes, underscores.
fn is_folder_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A secret path from a request, normalised; `/` when absent.
fn secret_path(raw: Option<String>) -> Result<String> {
    let path = store::normalize_path(&raw.unwrap_or_default());
    if path != "/" && !path[1..].split('/').all(is_folder_name) {
        return Err(ApiError::bad_request(
            "Invalid secret path. Only alphanumeric characters, dashes, and underscores are allowed.",
        ));
    }
    Ok(path)
}

/// Where a secret write goes: the fields every v3 secret mutation carries in its body.
struct Target {
    id: Option<String>,
    slug: Option<String>,
    environment: String,
    path: String,
    kind: String,
}

impl Target {
    fn from_body(body: &Map<String, Value>) -> Result<Target> {
        let kind = optional_str(body, "type")?.unwrap_or_else(|| "shared".to_string());
        secret_type(&kind)?;
        Ok(Target {
            id: optional_str(body, "workspaceId")?,
            slug: optional_str(body, "projectSlug")?,
            environment: required_str(body, "environment")?,
            path: secret_path(optional_str(body, "secretPath")?)?,
            kind,
        })
    }
}

/// The login (and renewal) answer of universal auth.
fn token_json(token: &str) -> Value {
    json!({
        "accessToken": token,
        "expiresIn": TOKEN_TTL_SECS,
        "accessTokenMaxTTL": TOKEN_TTL_SECS,
        "tokenType": "Bearer",
    })
}

fn folder_not_found(path: &str, environment: &str, name: &str) -> ApiError {
    ApiError::not_found(
        format!("Folder with path '{path}' in environment with slug '{environment}' not found"),
        name,
    )
}

fn secret_type(kind: &str) -> Result<()> {
    match kind {
        "shared" | "personal" => Ok(()),
        _ => Err(ApiError::new(
            422,
            "ValidationFailure",
            json!([{
                "code": "invalid_enum_value",
                "options": ["shared", "personal"],
                "path": ["type"],
                "message": format!("Invalid enum value. Expected 'shared' | 'personal', received '{kind}'"),
            }]),
        )),
    }
}

/// Infisical trims secret values but keeps one trailing newline when there was one.
fn secret_value(raw: String) -> String {
    if raw.ends_with('\n') {
        format!("{}\n", raw.trim())
    } else {
        raw.trim().to_string()
    }
}

fn secret_json(project_id: &str, environment: &str, secret: &Secret) -> Value {
    json!({
        "id": secret.id,
        "_id": secret.id,
        "workspace": project_id,
        "environment": environment,
        "version": secret.version,
        "type": secret.kind,
        "secretKey": secret.key,
        "secretValue": secret.value,
        "secretComment": secret.comment,
        "secretReminderNote": null,
        "secretReminderRepeatDays": null,
        "skipMultilineEncoding": secret.skip_multiline_encoding,
        "createdAt": secret.created_at,
        "updatedAt": secret.updated_at,
    })
}

/// A secret as the read endpoints answer it, with its path and (empty) tags and metadata.
fn read_secret_json(project_id: &str, environment: &str, secret: &Secret) -> Value {
    let mut json = secret_json(project_id, environment, secret);
    json["secretPath"] = secret.path.clone().into();
    json["secretValueHidden"] = false.into();
    json["secretMetadata"] = json!([]);
    json["tags"] = json!([]);
    json
}

fn folder_json(folder: &store::Folder, env_id: &str) -> Value {
    json!({
        "id": folder.id,
        "name": folder.name,
        "version": 1,
        "createdAt": folder.created_at,
        "updatedAt": folder.created_at,
        "envId": env_id,
        "parentId": folder.parent_id,
        "isReserved": false,
        "description": folder.description,
        "lastSecretModified": null,
    })
}

fn project_json(project: &Project, org_id: &str) -> Value {
    let environments: Vec<Value> = project
        .environments
        .iter()
        .map(|e| json!({ "name": e.name, "slug": e.slug, "id": e.id }))
        .collect();
    json!({
        "id": project.id,
        "_id": project.id,
        "name": project.name,
        "description": project.description,
        "type": "secret-manager",
        "defaultProduct": "secret-manager",
        "slug": project.slug,
        "autoCapitalization": false,
        "orgId": org_id,
        "createdAt": project.created_at,
        "updatedAt": project.created_at,
        "version": 3,
        "upgradeStatus": null,
        "pitVersionLimit": 10,
        "kmsCertificateKeyId": null,
        "auditLogsRetentionDays": null,
        "hasDeleteProtection": false,
        "secretSharing": true,
        "showSnapshotsLegacy": false,
        "environments": environments,
    })
}

/// Infisical's project slugs: lowercase letters, digits and single dashes.
fn slugify(text: &str) -> String {
    let mut slug = String::with_capacity(text.len());
    for c in text.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_string()
}

/// A query parameter, trimmed; empty counts as absent, as Infisical's handlers treat it (the Go
/// SDK sends `workspaceId=` next to `workspaceSlug`).
fn query(call: &Call, key: &str) -> Option<String> {
    call.query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn query_flag(call: &Call, key: &str) -> Result<bool> {
    match query(call, key).as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::new(
            422,
            "ValidationFailure",
            json!([{
                "code": "invalid_enum_value",
                "options": ["true", "false"],
                "path": [key],
                "message": format!("Invalid enum value. Expected 'true' | 'false', received '{other}'"),
            }]),
        )),
    }
}

/// The JSON body as an object; anything else reads as an empty object, so that its fields are
/// reported missing.
fn body_object(call: &Call) -> Map<String, Value> {
    match serde_json::from_slice(&call.body) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn body_str(body: &Map<String, Value>, key: &str) -> Option<String> {
    body.get(key)
        .and_then(Value::as_str)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn optional_raw_str(body: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match body.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::invalid(key, "string", type_name(other))),
    }
}

fn required_raw_str(body: &Map<String, Value>, key: &str) -> Result<String> {
    optional_raw_str(body, key)?.ok_or_else(|| ApiError::invalid(key, "string", "undefined"))
}

/// A string field, trimmed; empty counts as absent.
fn optional_str(body: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    Ok(optional_raw_str(body, key)?
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty()))
}

fn required_str(body: &Map<String, Value>, key: &str) -> Result<String> {
    Ok(required_raw_str(body, key)?.trim().to_string())
}

fn optional_bool(body: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ApiError::invalid(key, "boolean", type_name(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: &str, path: &str, token: Option<&str>, body: Value) -> Call {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Call {
            method: method.to_string(),
            path: path.to_string(),
            query: form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
            bearer: token.map(str::to_string),
            body: if body.is_null() {
                Vec::new()
            } else {
                body.to_string().into_bytes()
            },
        }
    }

    fn logged_in() -> (Double, String) {
        let mut double = Double::new("id".into(), "secret".into());
        let reply = double.handle(&call(
            "POST",
            "/api/v1/auth/universal-auth/login",
            None,
            json!({ "clientId": "id", "clientSecret": "secret" }),
        ));
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["tokenType"], "Bearer");
        let token = reply.body["accessToken"].as_str().unwrap().to_string();
        (double, token)
    }

    fn project(double: &mut Double, token: &str) -> Value {
        let reply = double.handle(&call(
            "POST",
            "/api/v2/workspace",
            Some(token),
            json!({ "projectName": "Paperclip Test" }),
        ));
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body["project"].clone()
    }

    #[test]
    fn login_rejects_wrong_credentials_and_calls_need_a_token() {
        let mut double = Double::new("id".into(), "secret".into());
        let reply = double.handle(&call(
            "POST",
            "/api/v1/auth/universal-auth/login",
            None,
            json!({ "clientId": "id", "clientSecret": "nope" }),
        ));
        assert_eq!(reply.status, 401);
        assert_eq!(reply.body["message"], "Invalid credentials");
        let reply = double.handle(&call(
            "GET",
            "/api/v3/secrets/raw?workspaceId=x&environment=dev",
            None,
            Value::Null,
        ));
        assert_eq!(reply.status, 401);
        assert_eq!(reply.body["message"], "Token missing");
        assert!(reply.body["reqId"].as_str().unwrap().starts_with("req-"));
    }

    #[test]
    fn a_new_project_has_three_environments_and_a_slug() {
        let (mut double, token) = logged_in();
        let project = project(&mut double, &token);
        let slugs: Vec<&str> = project["environments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["slug"].as_str().unwrap())
            .collect();
        assert_eq!(slugs, ["dev", "staging", "prod"]);
        assert!(
            project["slug"]
                .as_str()
                .unwrap()
                .starts_with("paperclip-test-")
        );
        let by_slug = double.handle(&call(
            "GET",
            &format!(
                "/api/v1/projects/slug/{}",
                project["slug"].as_str().unwrap()
            ),
            Some(&token),
            Value::Null,
        ));
        assert_eq!(by_slug.body["id"], project["id"]);
    }

    #[test]
    fn secrets_round_trip_with_real_errors() {
        let (mut double, token) = logged_in();
        let id = project(&mut double, &token)["id"]
            .as_str()
            .unwrap()
            .to_string();
        let body = json!({ "workspaceId": id, "environment": "dev", "secretValue": " v1 " });
        let created = double.handle(&call(
            "POST",
            "/api/v3/secrets/raw/KEY",
            Some(&token),
            body.clone(),
        ));
        assert_eq!(created.status, 200, "{}", created.body);
        assert_eq!(created.body["secret"]["secretValue"], "v1");
        let duplicate = double.handle(&call("POST", "/api/v3/secrets/raw/KEY", Some(&token), body));
        assert_eq!(
            (duplicate.status, &duplicate.body["message"]),
            (400, &json!("Secret already exist"))
        );

        let updated = double.handle(&call(
            "PATCH",
            "/api/v3/secrets/raw/KEY",
            Some(&token),
            json!({ "workspaceId": id, "environment": "dev", "secretValue": "v2" }),
        ));
        assert_eq!(updated.body["secret"]["version"], 2);
        let listed = double.handle(&call(
            "GET",
            &format!("/api/v3/secrets/raw?workspaceId={id}&environment=dev&workspaceSlug="),
            Some(&token),
            Value::Null,
        ));
        assert_eq!(listed.body["secrets"][0]["secretValue"], "v2");
        assert_eq!(listed.body["imports"], json!([]));

        let missing_folder = double.handle(&call(
            "POST",
            "/api/v3/secrets/raw/KEY",
            Some(&token),
            json!({ "workspaceId": id, "environment": "dev", "secretPath": "/app", "secretValue": "x" }),
        ));
        assert_eq!(missing_folder.status, 404);
        assert_eq!(
            missing_folder.body["message"],
            "Folder with path '/app' in environment with slug 'dev' not found"
        );
        assert_eq!(missing_folder.body["error"], "CreateSecret");

        let bad_path = double.handle(&call(
            "GET",
            &format!("/api/v3/secrets/raw?workspaceId={id}&environment=dev&secretPath=/a%20b"),
            Some(&token),
            Value::Null,
        ));
        assert_eq!(bad_path.status, 400, "{}", bad_path.body);

        let deleted = double.handle(&call(
            "DELETE",
            "/api/v3/secrets/raw/KEY",
            Some(&token),
            json!({ "workspaceId": id, "environment": "dev" }),
        ));
        assert_eq!(deleted.body["secret"]["secretValue"], "v2");
        let gone = double.handle(&call(
            "GET",
            &format!("/api/v3/secrets/raw/KEY?workspaceId={id}&environment=dev"),
            Some(&token),
            Value::Null,
        ));
        assert_eq!(
            (gone.status, &gone.body["message"]),
            (404, &json!("Secret with name 'KEY' not found"))
        );
    }

    #[test]
    fn folders_hold_secrets_listed_recursively() {
        let (mut double, token) = logged_in();
        let id = project(&mut double, &token)["id"]
            .as_str()
            .unwrap()
            .to_string();
        let folder = double.handle(&call(
            "POST",
            "/api/v2/folders",
            Some(&token),
            json!({ "projectId": id, "environment": "prod", "name": "db", "path": "/app" }),
        ));
        assert_eq!(folder.body["folder"]["path"], "/app/db", "{}", folder.body);
        let created = double.handle(&call(
            "POST",
            "/api/v3/secrets/raw/PASSWORD",
            Some(&token),
            json!({ "workspaceId": id, "environment": "prod", "secretPath": "/app/db/", "secretValue": "pw" }),
        ));
        assert_eq!(created.status, 200, "{}", created.body);
        let listed = double.handle(&call(
            "GET",
            &format!("/api/v3/secrets/raw?workspaceId={id}&environment=prod&secretPath=/app&recursive=true"),
            Some(&token),
            Value::Null,
        ));
        assert_eq!(listed.body["secrets"][0]["secretPath"], "/app/db");
        let folders = double.handle(&call(
            "GET",
            &format!("/api/v2/folders?projectId={id}&environment=prod&path=/"),
            Some(&token),
            Value::Null,
        ));
        assert_eq!(
            folders.body["folders"][0]["name"], "app",
            "{}",
            folders.body
        );
        assert_eq!(folders.body["folders"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn identities_see_only_their_own_projects() {
        let (mut double, token) = logged_in();
        let id = project(&mut double, &token)["id"]
            .as_str()
            .unwrap()
            .to_string();
        let other = double.add_identity();
        let body = json!({ "clientId": other.client_id, "clientSecret": other.client_secret });
        let login = double.handle(&call(
            "POST",
            "/api/v1/auth/universal-auth/login",
            None,
            body,
        ));
        let other_token = login.body["accessToken"].as_str().unwrap().to_string();
        let reply = double.handle(&call(
            "GET",
            &format!("/api/v3/secrets/raw?workspaceId={id}&environment=dev"),
            Some(&other_token),
            Value::Null,
        ));
        assert_eq!(reply.status, 403);
        assert_eq!(
            reply.body["error"],
            format!("Identity is not a member of the specified project with ID '{id}'")
        );
    }

    #[test]
    fn a_revoked_token_no_longer_works() {
        let (mut double, token) = logged_in();
        let revoke = double.handle(&call(
            "POST",
            "/api/v1/auth/token/revoke",
            None,
            json!({ "accessToken": token }),
        ));
        assert_eq!(revoke.status, 200);
        let reply = double.handle(&call(
            "POST",
            "/api/v2/workspace",
            Some(&token),
            json!({ "projectName": "x" }),
        ));
        assert_eq!(reply.status, 401);
    }

    #[test]
    fn scope_names_the_project_and_client() {
        let (mut double, token) = logged_in();
        let project = project(&mut double, &token);
        let slug = project["slug"].as_str().unwrap();
        let scope = double.scope(&call(
            "GET",
            &format!("/api/v3/secrets/raw?workspaceId=&workspaceSlug={slug}&environment=dev"),
            Some(&token),
            Value::Null,
        ));
        assert_eq!(
            scope.project.as_ref(),
            project["id"].as_str().map(str::to_string).as_ref()
        );
        assert_eq!(scope.client_id.as_deref(), Some("id"));
    }
}
