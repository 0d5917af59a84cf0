//! A test double that follows Infisical's public API reference; the real server cannot be
//! installed here.
//!
//! It serves, in memory, what paperclipctl and its tests use and what External Secrets
//! Operator's Infisical provider calls: universal-auth login and token renew/revoke, projects
//! (create, look up by slug), v3 raw secrets (list, get, create, update, delete) and folders,
//! with the real server's response and error shapes. Test-control endpoints live under
//! `/__double/` (see `control`).
//!
//! Usage: `infisical-double [--listen ADDR] [--client-id ID] [--client-secret SECRET]`, each also
//! read from `INFISICAL_DOUBLE_LISTEN`, `INFISICAL_DOUBLE_CLIENT_ID` and
//! `INFISICAL_DOUBLE_CLIENT_SECRET` (prefer the environment for the secret: argv is visible to
//! every user of the machine). The client id/secret are the bootstrap machine identity's
//! universal-auth credentials.

mod api;
mod control;
mod store;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::api::{Call, Double, Reply};
use crate::control::Control;

struct Config {
    listen: SocketAddr,
    client_id: String,
    client_secret: String,
}

fn config() -> Result<Config, String> {
    let mut listen = std::env::var("INFISICAL_DOUBLE_LISTEN").ok();
    let mut client_id = std::env::var("INFISICAL_DOUBLE_CLIENT_ID").ok();
    let mut client_secret = std::env::var("INFISICAL_DOUBLE_CLIENT_SECRET").ok();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--listen" => &mut listen,
            "--client-id" => &mut client_id,
            "--client-secret" => &mut client_secret,
            other => return Err(format!("unknown argument {other}")),
        };
        *slot = Some(args.next().ok_or(format!("{flag} needs a value"))?);
    }
    let listen = listen.unwrap_or_else(|| "127.0.0.1:58080".to_string());
    Ok(Config {
        listen: listen
            .parse()
            .map_err(|e| format!("--listen {listen}: {e}"))?,
        client_id: client_id
            .ok_or("no client id: set --client-id or INFISICAL_DOUBLE_CLIENT_ID")?,
        client_secret: client_secret
            .ok_or("no client secret: set --client-secret or INFISICAL_DOUBLE_CLIENT_SECRET")?,
    })
}

struct Shared {
    api: Double,
    control: Control,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = match config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("infisical-double: {message}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("infisical-double: cannot listen on {}: {e}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    eprintln!("infisical-double: listening on http://{}", config.listen);
    let shared = Arc::new(Mutex::new(Shared {
        api: Double::new(config.client_id, config.client_secret),
        control: Control::default(),
    }));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("infisical-double: accept: {e}");
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |request| serve(Arc::clone(&shared), request));
            // A client hanging up mid-request is its business, not a failure of the double.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn serve(
    shared: Arc<Mutex<Shared>>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let bearer = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_string());
    let call = Call {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect(),
        bearer,
        body: match body.collect().await {
            Ok(collected) => collected.to_bytes().to_vec(),
            Err(_) => Vec::new(),
        },
    };
    let reply = if call.path.starts_with("/__double/") {
        let shared = &mut *lock(&shared);
        shared.control.handle(&mut shared.api, &call)
    } else {
        answer(&shared, &call).await
    };
    Ok(into_response(reply))
}

/// Answers an API request, applying an injected fault first when one matches.
async fn answer(shared: &Mutex<Shared>, call: &Call) -> Reply {
    let (scope, injected) = {
        let shared = &mut *lock(shared);
        let scope = shared.api.scope(call);
        let injected = shared.control.take_fault(call, &scope);
        (scope, injected)
    };
    let failure = match injected {
        Some(injected) => {
            tokio::time::sleep(injected.delay).await;
            injected.failure
        }
        None => None,
    };
    let shared = &mut *lock(shared);
    let reply = match failure {
        Some(failure) => failure.into_reply(),
        None => shared.api.handle(call),
    };
    shared.control.record(call, &scope, reply.status);
    reply
}

/// A panic in one request must not take the other tests' double down with it.
fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn into_response(reply: Reply) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(reply.body.to_string())));
    *response.status_mut() = hyper::StatusCode::from_u16(reply.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}
