//! The test-control endpoints under `/__double/`, outside Infisical's API: injected faults, the
//! log of requests received, and extra machine identities.
//!
//! - `POST /__double/faults` `{status?, delayMs?, count?, pathPrefix?, method?, project?,
//!   clientId?, retryAfter?}`: the next `count` (default 1) matching API requests wait `delayMs`
//!   and, with a `status`, fail with it (429 carries `Retry-After: retryAfter`, default 1 s).
//!   `project` (id or slug) and `clientId` narrow the match, so tests sharing the double do not
//!   take each other's faults.
//! - `GET /__double/faults`, `DELETE /__double/faults[?project=]`: list or drop pending faults.
//! - `GET /__double/requests[?project=&clientId=]`: the API requests received, oldest first:
//!   method, path, query, project, client id and status; never a body, so never a secret value.
//! - `POST /__double/identities`: a new machine identity `{identityId, clientId, clientSecret}`.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{Value, json};

use crate::api::{ApiError, Call, Double, Reply, Scope};

struct Fault {
    id: u64,
    status: Option<u16>,
    delay: Duration,
    remaining: u32,
    path_prefix: String,
    method: Option<String>,
    project: Option<String>,
    client_id: Option<String>,
    retry_after: u64,
}

/// What an injected fault does to one request: wait, then maybe answer in place of the API.
pub struct Injected {
    pub delay: Duration,
    pub failure: Option<ApiError>,
}

/// Bounds the request log of a long-lived harness; tests look at their own recent requests.
const MAX_LOGGED: usize = 10_000;

#[derive(Default)]
pub struct Control {
    faults: Vec<Fault>,
    next_fault: u64,
    log: VecDeque<Value>,
}

impl Control {
    /// Consumes one use of the first pending fault that matches the request.
    pub fn take_fault(&mut self, call: &Call, scope: &Scope) -> Option<Injected> {
        let fault = self.faults.iter_mut().find(|f| {
            call.path.starts_with(&f.path_prefix)
                && f.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(&call.method))
                && f.project
                    .as_deref()
                    .is_none_or(|p| scope.project.as_deref() == Some(p))
                && f.client_id
                    .as_deref()
                    .is_none_or(|c| scope.client_id.as_deref() == Some(c))
        })?;
        fault.remaining -= 1;
        let injected = Injected {
            delay: fault.delay,
            failure: fault.status.map(|status| match status {
                429 => ApiError::rate_limited(fault.retry_after),
                status => ApiError::server(status),
            }),
        };
        self.faults.retain(|f| f.remaining > 0);
        Some(injected)
    }

    pub fn record(&mut self, call: &Call, scope: &Scope, status: u16) {
        if self.log.len() == MAX_LOGGED {
            self.log.pop_front();
        }
        let query: serde_json::Map<String, Value> = call
            .query
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        self.log.push_back(json!({
            "method": call.method,
            "path": call.path,
            "query": query,
            "project": scope.project,
            "clientId": scope.client_id,
            "status": status,
        }));
    }

    pub fn handle(&mut self, double: &mut Double, call: &Call) -> Reply {
        let result = match (call.method.as_str(), call.path.as_str()) {
            ("POST", "/__double/faults") => self.add_fault(call),
            ("GET", "/__double/faults") => {
                Ok(json!({ "faults": self.faults.iter().map(fault_json).collect::<Vec<_>>() }))
            }
            ("DELETE", "/__double/faults") => {
                let project = query(call, "project");
                let before = self.faults.len();
                self.faults
                    .retain(|f| project.is_some() && f.project.as_deref() != project);
                Ok(json!({ "cleared": before - self.faults.len() }))
            }
            ("GET", "/__double/requests") => {
                let (project, client_id) = (query(call, "project"), query(call, "clientId"));
                let requests: Vec<&Value> = self
                    .log
                    .iter()
                    .filter(|r| project.is_none_or(|p| r["project"] == p))
                    .filter(|r| client_id.is_none_or(|c| r["clientId"] == c))
                    .collect();
                Ok(json!({ "requests": requests }))
            }
            ("POST", "/__double/identities") => {
                let identity = double.add_identity();
                Ok(json!({
                    "identityId": identity.id,
                    "clientId": identity.client_id,
                    "clientSecret": identity.client_secret,
                }))
            }
            _ => Err((
                404,
                format!("no control endpoint {} {}", call.method, call.path),
            )),
        };
        match result {
            Ok(body) => Reply::ok(body),
            Err((status, message)) => Reply {
                status,
                headers: Vec::new(),
                body: json!({ "error": message }),
            },
        }
    }

    fn add_fault(&mut self, call: &Call) -> Result<Value, (u16, String)> {
        let body: Value =
            serde_json::from_slice(&call.body).map_err(|e| (400, format!("fault body: {e}")))?;
        let number = |key: &str| body.get(key).and_then(Value::as_u64);
        let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
        let status = number("status")
            .map(u16::try_from)
            .transpose()
            .ok()
            .flatten();
        if status.is_some_and(|s| !(400..=599).contains(&s)) {
            return Err((
                400,
                "status must be an HTTP error status (400-599)".to_string(),
            ));
        }
        let delay = Duration::from_millis(number("delayMs").unwrap_or(0));
        if status.is_none() && delay.is_zero() {
            return Err((
                400,
                "a fault needs a status, a delayMs, or both".to_string(),
            ));
        }
        self.next_fault += 1;
        let fault = Fault {
            id: self.next_fault,
            status,
            delay,
            remaining: number("count").unwrap_or(1).clamp(1, u64::from(u32::MAX)) as u32,
            path_prefix: text("pathPrefix").unwrap_or_else(|| "/api/".to_string()),
            method: text("method"),
            project: text("project"),
            client_id: text("clientId"),
            retry_after: number("retryAfter").unwrap_or(1),
        };
        let json = fault_json(&fault);
        self.faults.push(fault);
        Ok(json!({ "fault": json }))
    }
}

fn fault_json(fault: &Fault) -> Value {
    json!({
        "id": fault.id,
        "status": fault.status,
        "delayMs": fault.delay.as_millis() as u64,
        "remaining": fault.remaining,
        "pathPrefix": fault.path_prefix,
        "method": fault.method,
        "project": fault.project,
        "clientId": fault.client_id,
        "retryAfter": fault.retry_after,
    })
}

fn query<'a>(call: &'a Call, key: &str) -> Option<&'a str> {
    call.query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: &str, path: &str, body: Value) -> Call {
        Call {
            method: method.to_string(),
            path: path.to_string(),
            query: Vec::new(),
            bearer: None,
            body: body.to_string().into_bytes(),
        }
    }

    #[test]
    fn a_fault_applies_to_the_matching_requests_only_as_often_as_asked() {
        let mut control = Control::default();
        let mut double = Double::new("id".into(), "secret".into());
        let reply = control.handle(
            &mut double,
            &call(
                "POST",
                "/__double/faults",
                json!({ "status": 429, "count": 2, "project": "p1", "retryAfter": 3 }),
            ),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        let request = call("GET", "/api/v3/secrets/raw", Value::Null);
        let other = Scope {
            project: Some("p2".into()),
            client_id: None,
        };
        assert!(control.take_fault(&request, &other).is_none());
        let mine = Scope {
            project: Some("p1".into()),
            client_id: None,
        };
        for _ in 0..2 {
            let reply = control
                .take_fault(&request, &mine)
                .unwrap()
                .failure
                .unwrap()
                .into_reply();
            assert_eq!(reply.status, 429);
            assert!(reply.headers.contains(&("retry-after", "3".to_string())));
            assert_eq!(reply.body["error"], "RateLimitExceeded");
        }
        assert!(control.take_fault(&request, &mine).is_none());
    }

    #[test]
    fn a_fault_needs_something_to_do() {
        let mut control = Control::default();
        let mut double = Double::new("id".into(), "secret".into());
        let reply = control.handle(
            &mut double,
            &call("POST", "/__double/faults", json!({ "count": 2 })),
        );
        assert_eq!(reply.status, 400);
    }
}
