//! The control plane: create, inspect, extend and kill sandboxes, behind `X-API-Key`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;

use super::http::{Body, MAX_JSON_BODY, ReadError, api_error, empty, header_str, json, read_body};
use super::state::{MAX_TIMEOUT_SECS, NewEntry, State, same_secret};
use crate::e2b::protocol::SandboxDetail;

/// Default lifetime of `POST /sandboxes` (E2B's v1 spec) and `POST /v2/sandboxes` (the SDK).
const V1_DEFAULT_TIMEOUT: u64 = 15;
const V2_DEFAULT_TIMEOUT: u64 = 300;

pub(crate) async fn handle(state: Arc<State>, request: Request<Incoming>) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().trim_end_matches('/').to_string();
    if method == Method::GET && path == "/health" {
        return empty(StatusCode::NO_CONTENT);
    }
    let key = header_str(request.headers(), "x-api-key").unwrap_or_default();
    if !same_secret(key.as_bytes(), state.api_key.as_bytes()) {
        let message = if key.is_empty() { "missing X-API-Key header" } else { "invalid API key" };
        return api_error(StatusCode::UNAUTHORIZED, format!("{message}: use the key the server was started with"));
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (method, segments.as_slice()) {
        (Method::POST, ["sandboxes"]) => create(&state, request, V1_DEFAULT_TIMEOUT).await,
        (Method::POST, ["v2", "sandboxes"]) => create(&state, request, V2_DEFAULT_TIMEOUT).await,
        (Method::GET, ["sandboxes"] | ["v2", "sandboxes"]) => list(&state),
        (Method::GET, ["sandboxes", id]) => match state.get(id) {
            Some(sandbox) => json(StatusCode::OK, &sandbox.detail(true)),
            None => not_found(id),
        },
        (Method::DELETE, ["sandboxes", id]) => {
            if state.kill(id).await {
                empty(StatusCode::NO_CONTENT)
            } else {
                not_found(id)
            }
        }
        (Method::POST, ["sandboxes", id, "timeout"]) => set_timeout(&state, id, request).await,
        (Method::POST, ["sandboxes", id, "connect"] | ["v2", "sandboxes", id, "connect"]) => {
            connect(&state, id, request).await
        }
        (method, _) => api_error(StatusCode::NOT_FOUND, format!("no such endpoint: {method} {path}")),
    }
}

fn not_found(id: &str) -> Response<Body> {
    api_error(StatusCode::NOT_FOUND, format!("sandbox '{id}' not found"))
}

/// The JSON object of a request body; an answer when it is not one.
#[allow(clippy::result_large_err)]
async fn json_body(request: Request<Incoming>) -> Result<serde_json::Map<String, Value>, Response<Body>> {
    let body = read_body(request.into_body(), MAX_JSON_BODY).await.map_err(|e| match e {
        ReadError::TooLarge => api_error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
        ReadError::Broken(e) => api_error(StatusCode::BAD_REQUEST, format!("request body broke off: {e}")),
    })?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(api_error(StatusCode::BAD_REQUEST, "the request body must be a JSON object")),
        Err(e) => Err(api_error(StatusCode::BAD_REQUEST, format!("the request body is not JSON: {e}"))),
    }
}

/// A lifetime in seconds: a positive integer up to 24 hours, as E2B validates it.
#[allow(clippy::result_large_err)]
fn timeout(value: Option<&Value>, default: u64) -> Result<Duration, Response<Body>> {
    let Some(value) = value else { return Ok(Duration::from_secs(default)) };
    let seconds = value.as_i64().ok_or_else(|| api_error(StatusCode::BAD_REQUEST, "timeout must be an integer"))?;
    if seconds <= 0 {
        return Err(api_error(StatusCode::BAD_REQUEST, "Timeout must be greater than 0 seconds"));
    }
    if seconds as u64 > MAX_TIMEOUT_SECS {
        return Err(api_error(StatusCode::BAD_REQUEST, "Timeout cannot be greater than 24 hours"));
    }
    Ok(Duration::from_secs(seconds as u64))
}

#[allow(clippy::result_large_err)]
fn string_map(body: &serde_json::Map<String, Value>, key: &str) -> Result<BTreeMap<String, String>, Response<Body>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(value) => serde_json::from_value(value.clone())
            .map_err(|_| api_error(StatusCode::BAD_REQUEST, format!("{key} must be an object of strings"))),
    }
}

async fn create(state: &Arc<State>, request: Request<Incoming>, default_timeout: u64) -> Response<Body> {
    let parsed = async {
        let body = json_body(request).await?;
        let template_id = match body.get("templateID") {
            Some(Value::String(t)) if !t.is_empty() => t.clone(),
            _ => return Err(api_error(StatusCode::BAD_REQUEST, "templateID is required")),
        };
        let timeout = timeout(body.get("timeout"), default_timeout)?;
        let env_vars = string_map(&body, "envVars")?;
        let metadata = string_map(&body, "metadata")?;
        Ok(NewEntry { template_id, timeout, env_vars, metadata })
    };
    let new = match parsed.await {
        Ok(new) => new,
        Err(response) => return response,
    };
    match state.create(new) {
        Ok(sandbox) => json(StatusCode::CREATED, &sandbox.created()),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot create the sandbox directory: {e}")),
    }
}

fn list(state: &State) -> Response<Body> {
    let mut sandboxes: Vec<SandboxDetail> =
        super::state::lock(&state.sandboxes).values().map(|s| s.detail(false)).collect();
    sandboxes.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    json(StatusCode::OK, &sandboxes)
}

async fn set_timeout(state: &State, id: &str, request: Request<Incoming>) -> Response<Body> {
    let Some(sandbox) = state.get(id) else { return not_found(id) };
    let body = match json_body(request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    if body.get("timeout").is_none() {
        return api_error(StatusCode::BAD_REQUEST, "timeout is required");
    }
    match timeout(body.get("timeout"), 0) {
        Ok(timeout) => {
            sandbox.set_timeout(timeout);
            empty(StatusCode::NO_CONTENT)
        }
        Err(response) => response,
    }
}

/// `connect`: the create answer again; the lifetime is only ever extended.
async fn connect(state: &State, id: &str, request: Request<Incoming>) -> Response<Body> {
    let Some(sandbox) = state.get(id) else { return not_found(id) };
    let body = match json_body(request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    match timeout(body.get("timeout"), 0) {
        Ok(timeout) => {
            if chrono::Utc::now() + timeout > sandbox.end_at() {
                sandbox.set_timeout(timeout);
            }
            json(StatusCode::OK, &sandbox.created())
        }
        Err(response) => response,
    }
}
