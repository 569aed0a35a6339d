//! A client of E2B's control plane (REST) and of envd, the daemon in every sandbox (plain HTTP
//! for files, Connect-RPC with the JSON codec for processes and the filesystem).
//!
//! ```no_run
//! # async fn demo() -> Result<(), osiris_adapters::e2b::E2bError> {
//! use osiris_adapters::e2b::{E2bClient, NewSandbox, ProcessConfig, StartOptions};
//! let client = E2bClient::from_env()?;
//! let sandbox = client.create_sandbox(&NewSandbox { template_id: "base".into(), timeout: 300, ..Default::default() }).await?;
//! sandbox.upload_bytes("hello.txt", b"hi".to_vec()).await?;
//! let config = ProcessConfig { cmd: "/bin/cat".into(), args: vec!["hello.txt".into()], ..Default::default() };
//! let output = sandbox.start_process(config, StartOptions::default()).await?.into_output().await?;
//! assert_eq!(output.stdout, b"hi");
//! client.kill_sandbox(sandbox.id()).await?;
//! # Ok(()) }
//! ```
//!
//! Envd is spoken over HTTP/1.1 only: E2B's proxy pads HTTP/2 downloads with empty DATA frames
//! that make the `h2` crate drop the connection (the official SDK pins HTTP/1.1 for the same
//! reason). Secrets (the API key, the sandbox access token) travel in headers only and never
//! appear in an error message or `Debug` output.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use http::StatusCode;
use reqwest::{Method, RequestBuilder, Response, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;

use super::envelope::{EnvelopeDecoder, encode_json};
use super::protocol::{
    Code, ConnectError, CreatedSandbox, DataEvent, ENVD_PORT, EndEvent, EndOfStream, EntryInfo, ListRequest,
    ListResponse, NewSandbox, ProcessConfig, ProcessEvent, ProcessInfo, ProcessInput, ProcessSelector, SandboxDetail,
    SendInputRequest, SendSignalRequest, Signal, StartRequest, StartResponse, StatRequest, StatResponse,
    TimeoutRequest, UploadedEntry,
};
use super::retry::RetryPolicy;

/// E2B's default domain.
pub const DEFAULT_DOMAIN: &str = "e2b.app";

const CONNECT_JSON: &str = "application/connect+json";

/// Everything that can go wrong talking to E2B. Messages say what failed and what to do; none
/// carries the API key or an access token.
#[derive(Debug, thiserror::Error)]
pub enum E2bError {
    #[error(
        "E2B_API_KEY is not set: export your E2B API key (dashboard: https://e2b.dev/dashboard), or run a local server with `osiris sandbox serve` and export the variables it prints"
    )]
    MissingApiKey,
    #[error("invalid E2B configuration: {0}")]
    Config(String),
    #[error("the E2B API at {url} rejected the API key (401 Unauthorized): check E2B_API_KEY")]
    BadApiKey { url: String },
    #[error(
        "envd of sandbox {sandbox_id} refused the access token (401 Unauthorized): the sandbox was recreated or belongs to another client"
    )]
    BadAccessToken { sandbox_id: String },
    #[error(
        "E2B rate limit or quota reached at {url} (429 Too Many Requests, {attempts} attempts): {message}; wait and retry, or raise your plan's limits"
    )]
    RateLimited { url: String, attempts: u32, message: String },
    #[error("sandbox {sandbox_id} is gone (HTTP {status}): it was killed or its timeout expired")]
    SandboxGone { sandbox_id: String, status: u16 },
    #[error("{path} does not exist in sandbox {sandbox_id}")]
    FileNotFound { sandbox_id: String, path: String },
    #[error("request to {url} timed out{}", after.map(|d| format!(" after {d:?}")).unwrap_or_default())]
    Timeout { url: String, after: Option<Duration> },
    #[error("cannot connect to {url} (set by {source_var}): {reason}; check the address and that the server runs")]
    Unreachable { url: String, source_var: &'static str, reason: String },
    #[error("{method} failed in sandbox {sandbox_id}: {code}: {message}")]
    Rpc { method: &'static str, sandbox_id: String, code: Code, message: String },
    #[error("{method} {url} answered HTTP {status}: {message}")]
    Http { method: String, url: String, status: u16, message: String },
    #[error("unexpected answer from {url}: {detail}")]
    Protocol { url: String, detail: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("request to {url} failed: {reason}")]
    Transport { url: String, reason: String },
}

impl E2bError {
    /// The Connect code of an RPC failure.
    pub fn rpc_code(&self) -> Option<Code> {
        match self {
            E2bError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A secret string whose `Debug` is `***`.
#[derive(Clone)]
struct Secret(Arc<str>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A configured URL and the setting it came from (named in connection errors).
#[derive(Clone, Debug)]
struct Origin {
    url: String,
    source: &'static str,
}

/// Builds an [`E2bClient`] from explicit settings (tests, embedding) — nothing is read from the
/// process environment here; [`E2bClient::from_env`] does that.
#[derive(Clone, Debug, Default)]
pub struct E2bClientBuilder {
    api_key: Option<Secret>,
    domain: Option<String>,
    api_url: Option<Origin>,
    sandbox_url: Option<Origin>,
    retry: Option<RetryPolicy>,
    request_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    user_agent: Option<String>,
}

impl E2bClientBuilder {
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Secret(key.into().into()));
        self
    }

    /// The E2B domain (default `e2b.app`): API at `https://api.{domain}`, envd at
    /// `https://49983-{sandbox}.{domain}`.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The control-plane base URL, e.g. `http://127.0.0.1:3000` for `osiris sandbox serve`.
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.api_url = Some(Origin { url: url.into(), source: "E2bClientBuilder::api_url" });
        self
    }

    /// The envd base URL for every sandbox (`{id}` is replaced by the sandbox id), e.g.
    /// `http://127.0.0.1:49983`; the sandbox is also named by the `E2b-Sandbox-Id` header.
    pub fn sandbox_url(mut self, url: impl Into<String>) -> Self {
        self.sandbox_url = Some(Origin { url: url.into(), source: "E2bClientBuilder::sandbox_url" });
        self
    }

    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Total time for one control-plane or unary request (default 60 s). Streams, uploads and
    /// downloads have no total limit.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Time to establish a connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = Some(agent.into());
        self
    }

    fn with_origin(mut self, api: Option<Origin>, sandbox: Option<Origin>) -> Self {
        self.api_url = api.or(self.api_url);
        self.sandbox_url = sandbox.or(self.sandbox_url);
        self
    }

    pub fn build(self) -> Result<E2bClient, E2bError> {
        let domain = self.domain.unwrap_or_else(|| DEFAULT_DOMAIN.to_string());
        let api = self
            .api_url
            .unwrap_or_else(|| Origin { url: format!("https://api.{domain}"), source: "E2B_DOMAIN (default e2b.app)" });
        let api_url = parse_base(&api)?;
        if let Some(sandbox) = &self.sandbox_url {
            parse_base(&Origin { url: sandbox.url.replace("{id}", "x"), source: sandbox.source })?;
        }
        // reqwest is built without a default rustls provider (that would be aws-lc): install
        // ring, unless the host application installed one already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let user_agent = self.user_agent.unwrap_or_else(|| format!("osiris/{}", env!("CARGO_PKG_VERSION")));
        let http = reqwest::Client::builder()
            .http1_only()
            .user_agent(user_agent)
            .connect_timeout(self.connect_timeout.unwrap_or(Duration::from_secs(10)))
            .build()
            .map_err(|e| E2bError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(E2bClient {
            inner: Arc::new(Inner {
                http,
                api_key: self.api_key,
                domain,
                api: api.clone(),
                api_url,
                sandbox_url: self.sandbox_url,
                retry: self.retry.unwrap_or_default(),
                request_timeout: self.request_timeout.unwrap_or(Duration::from_secs(60)),
            }),
        })
    }
}

fn parse_base(origin: &Origin) -> Result<Url, E2bError> {
    let url = Url::parse(&origin.url)
        .map_err(|e| E2bError::Config(format!("{} is not a URL ({e}); set by {}", origin.url, origin.source)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(E2bError::Config(format!("{} must be an http(s) URL; set by {}", origin.url, origin.source)));
    }
    Ok(url)
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    api_key: Option<Secret>,
    domain: String,
    api: Origin,
    api_url: Url,
    sandbox_url: Option<Origin>,
    retry: RetryPolicy,
    request_timeout: Duration,
}

/// A client of one E2B deployment (E2B cloud, self-hosted, or `osiris sandbox serve`). Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct E2bClient {
    inner: Arc<Inner>,
}

/// Which requests may be sent again after a retryable answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// Safe or idempotent: retried on connection failures and retryable statuses.
    Full,
    /// Not idempotent: retried only when the connection could not be established (the server
    /// never saw it).
    ConnectOnly,
}

impl E2bClient {
    pub fn builder() -> E2bClientBuilder {
        E2bClientBuilder::default()
    }

    /// Configured like the official SDK: `E2B_API_KEY` (required), `E2B_DOMAIN` (default
    /// `e2b.app`), `E2B_API_URL` (control-plane override) and `E2B_SANDBOX_URL` (envd override).
    pub fn from_env() -> Result<Self, E2bError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let key = var("E2B_API_KEY").ok_or(E2bError::MissingApiKey)?;
        let mut builder = E2bClient::builder().api_key(key);
        if let Some(domain) = var("E2B_DOMAIN") {
            builder = builder.domain(domain);
        }
        let api = var("E2B_API_URL").map(|url| Origin { url, source: "E2B_API_URL" });
        let sandbox = var("E2B_SANDBOX_URL").map(|url| Origin { url, source: "E2B_SANDBOX_URL" });
        builder.with_origin(api, sandbox).build()
    }

    /// The control-plane base URL.
    pub fn api_url(&self) -> &str {
        &self.inner.api.url
    }

    fn api_endpoint(&self, path: &str) -> Url {
        let mut url = self.inner.api_url.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{path}"));
        url
    }

    fn rest(&self, method: Method, url: Url) -> Result<RequestBuilder, E2bError> {
        let key = self.inner.api_key.as_ref().ok_or(E2bError::MissingApiKey)?;
        Ok(self.inner.http.request(method, url).header("X-API-Key", &*key.0).timeout(self.inner.request_timeout))
    }

    /// Creates a sandbox (`POST /v2/sandboxes`). Retried on 429/5xx with an `Idempotency-Key`,
    /// so a retry never creates a second sandbox.
    pub async fn create_sandbox(&self, request: &NewSandbox) -> Result<Sandbox, E2bError> {
        let url = self.api_endpoint("/v2/sandboxes");
        let key = idempotency_key();
        let response = self
            .send(&url, self.api_source(), Replay::Full, || {
                Ok(self.rest(Method::POST, url.clone())?.header("Idempotency-Key", &key).json(request))
            })
            .await?;
        let (response, attempts) = response;
        if response.status() != StatusCode::CREATED && response.status() != StatusCode::OK {
            return Err(self.rest_error(response, &url, None, attempts).await);
        }
        let created: CreatedSandbox = read_json(response, &url).await?;
        self.sandbox(&created)
    }

    /// A handle on a sandbox from its create (or connect) answer.
    pub fn sandbox(&self, created: &CreatedSandbox) -> Result<Sandbox, E2bError> {
        let envd = self.envd_base(&created.sandbox_id, created.domain.as_deref())?;
        Ok(Sandbox {
            client: self.clone(),
            id: created.sandbox_id.clone(),
            envd_version: created.envd_version.clone(),
            envd,
            token: created.envd_access_token.as_ref().map(|t| Secret(t.as_str().into())),
        })
    }

    fn envd_base(&self, id: &str, domain: Option<&str>) -> Result<Origin, E2bError> {
        let origin = match &self.inner.sandbox_url {
            Some(o) => Origin { url: o.url.replace("{id}", id), source: o.source },
            None => {
                let domain = domain.unwrap_or(&self.inner.domain);
                Origin { url: format!("https://{ENVD_PORT}-{id}.{domain}"), source: "E2B_DOMAIN (default e2b.app)" }
            }
        };
        parse_base(&origin)?;
        Ok(origin)
    }

    /// Kills a sandbox: `true` when killed, `false` when it did not exist (any more).
    pub async fn kill_sandbox(&self, sandbox_id: &str) -> Result<bool, E2bError> {
        let url = self.api_endpoint(&format!("/sandboxes/{sandbox_id}"));
        let (response, attempts) =
            self.send(&url, self.api_source(), Replay::Full, || self.rest(Method::DELETE, url.clone())).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.rest_error(response, &url, None, attempts).await),
        }
    }

    /// Sets the sandbox's remaining lifetime to `timeout` from now.
    pub async fn set_timeout(&self, sandbox_id: &str, timeout: Duration) -> Result<(), E2bError> {
        let url = self.api_endpoint(&format!("/sandboxes/{sandbox_id}/timeout"));
        let body = TimeoutRequest { timeout: u32::try_from(timeout.as_secs().max(1)).unwrap_or(u32::MAX) };
        let (response, attempts) = self
            .send(&url, self.api_source(), Replay::Full, || Ok(self.rest(Method::POST, url.clone())?.json(&body)))
            .await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(self.rest_error(response, &url, Some(sandbox_id), attempts).await)
    }

    /// A running sandbox's details (size, start and end time).
    pub async fn sandbox_info(&self, sandbox_id: &str) -> Result<SandboxDetail, E2bError> {
        let url = self.api_endpoint(&format!("/sandboxes/{sandbox_id}"));
        let (response, attempts) =
            self.send(&url, self.api_source(), Replay::Full, || self.rest(Method::GET, url.clone())).await?;
        if response.status() != StatusCode::OK {
            return Err(self.rest_error(response, &url, Some(sandbox_id), attempts).await);
        }
        read_json(response, &url).await
    }

    /// `GET /health` of the control plane (no key needed).
    pub async fn health(&self) -> Result<(), E2bError> {
        let url = self.api_endpoint("/health");
        let (response, attempts) = self
            .send(&url, self.api_source(), Replay::Full, || {
                Ok(self.inner.http.get(url.clone()).timeout(self.inner.request_timeout))
            })
            .await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(self.rest_error(response, &url, None, attempts).await)
    }

    fn api_source(&self) -> &'static str {
        self.inner.api.source
    }

    /// Sends a request built by `build`, retrying as `replay` allows. Returns the response and
    /// how many attempts it took.
    async fn send(
        &self,
        url: &Url,
        source_var: &'static str,
        replay: Replay,
        build: impl Fn() -> Result<RequestBuilder, E2bError>,
    ) -> Result<(Response, u32), E2bError> {
        let policy = self.inner.retry;
        let mut retry = 0;
        loop {
            let can_retry = retry < policy.max_retries;
            match build()?.send().await {
                Err(e) if e.is_connect() && can_retry => {}
                Err(e) => return Err(transport_error(e, url, source_var)),
                Ok(r) if can_retry && replay == Replay::Full && RetryPolicy::retryable(r.status(), r.headers()) => {
                    tokio::time::sleep(policy.delay(retry, Some(r.headers()))).await;
                    retry += 1;
                    continue;
                }
                Ok(r) => return Ok((r, retry + 1)),
            }
            tokio::time::sleep(policy.delay(retry, None)).await;
            retry += 1;
        }
    }

    async fn rest_error(&self, response: Response, url: &Url, sandbox_id: Option<&str>, attempts: u32) -> E2bError {
        let status = response.status();
        let message = error_message(response).await;
        match (status.as_u16(), sandbox_id) {
            (401, _) => E2bError::BadApiKey { url: self.inner.api.url.clone() },
            (429, _) => E2bError::RateLimited { url: url.to_string(), attempts, message },
            (404, Some(id)) => E2bError::SandboxGone { sandbox_id: id.to_string(), status: 404 },
            (code, _) => E2bError::Http { method: "request".into(), url: url.to_string(), status: code, message },
        }
    }
}

/// A random `Idempotency-Key` (`[a-z0-9-]`, as E2B requires).
fn idempotency_key() -> String {
    let mut bytes = [0u8; 16];
    // Without randomness a fixed key would merge unrelated creates: fall back to time and pid.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        bytes = (nanos ^ u128::from(std::process::id())).to_le_bytes();
    }
    format!("osiris-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn transport_error(error: reqwest::Error, url: &Url, source_var: &'static str) -> E2bError {
    let url = url_without_query(url);
    if error.is_connect() {
        return E2bError::Unreachable { url, source_var, reason: root_cause(&error) };
    }
    if error.is_timeout() {
        return E2bError::Timeout { url, after: None };
    }
    E2bError::Transport { url, reason: root_cause(&error) }
}

fn url_without_query(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// The innermost cause ("Connection refused (os error 111)") instead of reqwest's wrapper text.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The `message` of an error body (E2B `{code,message}` or Connect `{code,message}`), else the
/// start of the body text.
async fn error_message(response: Response) -> String {
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    if let Ok(error) = serde_json::from_slice::<serde_json::Value>(&body)
        && let Some(message) = error.get("message").and_then(|m| m.as_str())
    {
        return message.to_string();
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    if text.is_empty() {
        return status.canonical_reason().unwrap_or("no message").to_string();
    }
    text.chars().take(300).collect()
}

async fn read_json<T: DeserializeOwned>(response: Response, url: &Url) -> Result<T, E2bError> {
    let body = response.bytes().await.map_err(|e| transport_error(e, url, "the response body"))?;
    serde_json::from_slice(&body).map_err(|e| E2bError::Protocol { url: url_without_query(url), detail: e.to_string() })
}

/// Options of [`Sandbox::start_process`].
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// Kill the process when it runs longer (`Connect-Timeout-Ms`); `None` runs it unbounded.
    pub timeout: Option<Duration>,
    /// A tag to find the process by later.
    pub tag: Option<String>,
    /// How often envd sends keepalive events on a silent stream (default 30 s).
    pub keepalive: Option<Duration>,
    /// Give the process a stdin pipe that [`Sandbox::send_input`] writes to (default
    /// `/dev/null`).
    pub stdin: bool,
}

/// A sandbox: its id and how to reach its envd. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    client: E2bClient,
    id: String,
    envd_version: String,
    envd: Origin,
    token: Option<Secret>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("id", &self.id)
            .field("envd_url", &self.envd.url)
            .field("envd_version", &self.envd_version)
            .finish_non_exhaustive()
    }
}

/// What a process printed and how it ended.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessOutput {
    pub pid: u32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub end: EndEvent,
}

impl Sandbox {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn envd_version(&self) -> &str {
        &self.envd_version
    }

    /// The envd base URL of this sandbox.
    pub fn envd_url(&self) -> &str {
        &self.envd.url
    }

    /// The client the sandbox was made with.
    pub fn client(&self) -> &E2bClient {
        &self.client
    }

    fn endpoint(&self, path: &str) -> Url {
        // Checked when the handle was made.
        let mut url = Url::parse(&self.envd.url).unwrap_or_else(|_| self.client.inner.api_url.clone());
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{path}"));
        url
    }

    fn files_url(&self, path: &str) -> Url {
        let mut url = self.endpoint("/files");
        url.query_pairs_mut().append_pair("path", path);
        url
    }

    fn envd_request(&self, method: Method, url: Url) -> RequestBuilder {
        let mut request = self
            .client
            .inner
            .http
            .request(method, url)
            .header("E2b-Sandbox-Id", &self.id)
            .header("E2b-Sandbox-Port", ENVD_PORT.to_string());
        if let Some(token) = &self.token {
            request = request.header("X-Access-Token", &*token.0);
        }
        request
    }

    async fn send(
        &self,
        url: &Url,
        replay: Replay,
        build: impl Fn() -> Result<RequestBuilder, E2bError>,
    ) -> Result<(Response, u32), E2bError> {
        self.client.send(url, self.envd.source, replay, build).await
    }

    /// Maps a failed plain-HTTP envd answer.
    async fn http_error(&self, response: Response, url: &Url, path: &str, attempts: u32) -> E2bError {
        let status = response.status().as_u16();
        let message = error_message(response).await;
        match status {
            401 => E2bError::BadAccessToken { sandbox_id: self.id.clone() },
            404 => E2bError::FileNotFound { sandbox_id: self.id.clone(), path: path.to_string() },
            429 => E2bError::RateLimited { url: url_without_query(url), attempts, message },
            502 => E2bError::SandboxGone { sandbox_id: self.id.clone(), status },
            _ => E2bError::Http { method: "request".into(), url: url_without_query(url), status, message },
        }
    }

    /// Maps a non-200 Connect answer: a Connect error body, or a proxy page.
    async fn rpc_error(&self, method: &'static str, response: Response, url: &Url, attempts: u32) -> E2bError {
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        let connect = serde_json::from_slice::<ConnectError>(&body).ok();
        match (status, connect) {
            (401, _) => E2bError::BadAccessToken { sandbox_id: self.id.clone() },
            (429, _) => E2bError::RateLimited {
                url: url.to_string(),
                attempts,
                message: String::from_utf8_lossy(&body).chars().take(300).collect(),
            },
            (_, Some(e)) => E2bError::Rpc { method, sandbox_id: self.id.clone(), code: e.code, message: e.message },
            (502, None) => E2bError::SandboxGone { sandbox_id: self.id.clone(), status },
            (_, None) => E2bError::Http {
                method: method.into(),
                url: url.to_string(),
                status,
                message: String::from_utf8_lossy(&body).chars().take(300).collect(),
            },
        }
    }

    /// Writes `bytes` to `path` (relative paths are under the sandbox user's home), creating
    /// parent directories and replacing an existing file.
    pub async fn upload_bytes(&self, path: &str, bytes: impl Into<Bytes>) -> Result<UploadedEntry, E2bError> {
        let bytes = bytes.into();
        let url = self.files_url(path);
        let (response, attempts) = self
            .send(&url, Replay::Full, || {
                Ok(self
                    .envd_request(Method::POST, url.clone())
                    .header(http::header::CONTENT_TYPE, "application/octet-stream")
                    .body(bytes.clone()))
            })
            .await?;
        self.uploaded(response, &url, path, attempts).await
    }

    /// Streams the local file `local` to `path` in the sandbox (never whole in memory).
    pub async fn upload_file(&self, path: &str, local: &Path) -> Result<UploadedEntry, E2bError> {
        let url = self.files_url(path);
        let io = |source| E2bError::Io { path: local.to_path_buf(), source };
        let (response, attempts) = self
            .send(&url, Replay::Full, || {
                // Opened for each attempt: a retried upload starts from the beginning.
                let file = tokio::fs::File::from_std(std::fs::File::open(local).map_err(io)?);
                let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
                Ok(self
                    .envd_request(Method::POST, url.clone())
                    .header(http::header::CONTENT_TYPE, "application/octet-stream")
                    .body(body))
            })
            .await?;
        self.uploaded(response, &url, path, attempts).await
    }

    async fn uploaded(
        &self,
        response: Response,
        url: &Url,
        path: &str,
        attempts: u32,
    ) -> Result<UploadedEntry, E2bError> {
        if response.status() != StatusCode::OK {
            return Err(self.http_error(response, url, path, attempts).await);
        }
        let entries: Vec<UploadedEntry> = read_json(response, url).await?;
        entries.into_iter().next().ok_or_else(|| E2bError::Protocol {
            url: url_without_query(url),
            detail: "the upload answer lists no file".into(),
        })
    }

    /// Downloads `path` into `local`, streamed: written under a temporary name beside `local` and
    /// renamed once complete, so `local` is never a partial file. Returns the byte count.
    pub async fn download_file(&self, path: &str, local: &Path) -> Result<u64, E2bError> {
        let partial = partial_name(local);
        let io = |source| E2bError::Io { path: partial.clone(), source };
        let file = tokio::fs::File::create(&partial).await.map_err(io)?;
        let written = self.download_into(path, file, &partial).await;
        match written {
            Ok(n) => {
                tokio::fs::rename(&partial, local)
                    .await
                    .map_err(|source| E2bError::Io { path: local.into(), source })?;
                Ok(n)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                Err(e)
            }
        }
    }

    /// Streams `path` into `file`, which the caller opened (a temporary file it commits, a FIFO,
    /// a device); `shown_as` names it in errors. Returns the byte count.
    pub async fn download_into(&self, path: &str, file: tokio::fs::File, shown_as: &Path) -> Result<u64, E2bError> {
        let url = self.files_url(path);
        let (response, attempts) =
            self.send(&url, Replay::Full, || Ok(self.envd_request(Method::GET, url.clone()))).await?;
        if response.status() != StatusCode::OK {
            return Err(self.http_error(response, &url, path, attempts).await);
        }
        write_body(response, file, shown_as, &url).await
    }

    /// Reads a whole (small) file.
    pub async fn read_bytes(&self, path: &str) -> Result<Vec<u8>, E2bError> {
        let url = self.files_url(path);
        let (response, attempts) =
            self.send(&url, Replay::Full, || Ok(self.envd_request(Method::GET, url.clone()))).await?;
        if response.status() != StatusCode::OK {
            return Err(self.http_error(response, &url, path, attempts).await);
        }
        let body = response.bytes().await.map_err(|e| transport_error(e, &url, self.envd.source))?;
        Ok(body.to_vec())
    }

    /// `Filesystem.Stat`: the entry, or `None` when nothing is at `path`.
    pub async fn stat(&self, path: &str) -> Result<Option<EntryInfo>, E2bError> {
        let request = StatRequest { path: path.to_string() };
        match self.unary::<_, StatResponse>("filesystem.Filesystem/Stat", &request).await {
            Ok(response) => Ok(response.entry),
            Err(E2bError::Rpc { code: Code::NotFound, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `Process.SendSignal` to the process `pid`.
    pub async fn send_signal(&self, pid: u32, signal: Signal) -> Result<(), E2bError> {
        let request = SendSignalRequest { process: ProcessSelector::Pid(pid), signal };
        self.unary::<_, serde_json::Value>("process.Process/SendSignal", &request).await.map(|_| ())
    }

    /// `Process.SendInput`: writes `bytes` to the stdin of the process `pid` (started with
    /// [`StartOptions::stdin`]). One attempt within `timeout`, never replayed: a heartbeat that
    /// did not arrive in time is a missed heartbeat, and the caller knows when it last got one
    /// through.
    pub async fn send_input(&self, pid: u32, bytes: &[u8], timeout: Duration) -> Result<(), E2bError> {
        const METHOD: &str = "process.Process/SendInput";
        let request =
            SendInputRequest { process: ProcessSelector::Pid(pid), input: ProcessInput::Stdin(bytes.to_vec()) };
        let url = self.endpoint(&format!("/{METHOD}"));
        let response = self
            .envd_request(Method::POST, url.clone())
            .header("Connect-Protocol-Version", "1")
            .header("Connect-Timeout-Ms", timeout.as_millis().max(1).to_string())
            .timeout(timeout)
            .json(&request)
            .send()
            .await
            .map_err(|e| transport_error(e, &url, self.envd.source))?;
        if response.status() != StatusCode::OK {
            return Err(self.rpc_error(METHOD, response, &url, 1).await);
        }
        Ok(())
    }

    /// `Process.List`: the processes running in the sandbox.
    pub async fn list_processes(&self) -> Result<Vec<ProcessInfo>, E2bError> {
        Ok(self.unary::<_, ListResponse>("process.Process/List", &ListRequest {}).await?.processes)
    }

    /// A unary Connect call with the JSON codec (all of them are safe to retry: they read, or
    /// signal a process that is either still there or already gone).
    async fn unary<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        method: &'static str,
        request: &Req,
    ) -> Result<Resp, E2bError> {
        let url = self.endpoint(&format!("/{method}"));
        let timeout = self.client.inner.request_timeout;
        let (response, attempts) = self
            .send(&url, Replay::Full, || {
                Ok(self
                    .envd_request(Method::POST, url.clone())
                    .header("Connect-Protocol-Version", "1")
                    .header("Connect-Timeout-Ms", timeout.as_millis().to_string())
                    .timeout(timeout)
                    .json(request))
            })
            .await?;
        if response.status() != StatusCode::OK {
            return Err(self.rpc_error(method, response, &url, attempts).await);
        }
        read_json(response, &url).await
    }

    /// `Process.Start`: runs `config` (with `/dev/null` as stdin unless `options.stdin`) and streams its events. The
    /// returned stream has already received the `start` event (see [`ProcessStream::pid`]) and
    /// yields the `data`/`keepalive` events, then exactly one `end`. Dropping the stream does
    /// not kill the process; [`Sandbox::send_signal`] does.
    pub async fn start_process(&self, config: ProcessConfig, options: StartOptions) -> Result<ProcessStream, E2bError> {
        const METHOD: &str = "process.Process/Start";
        let url = self.endpoint(&format!("/{METHOD}"));
        let request = StartRequest { process: config, tag: options.tag, stdin: Some(options.stdin) };
        let body = encode_json(&request).map_err(|e| E2bError::Protocol {
            url: url.to_string(),
            detail: format!("cannot encode the request: {e}"),
        })?;
        let keepalive = options.keepalive.unwrap_or(Duration::from_secs(30)).as_secs().max(1);
        let (response, attempts) = self
            .send(&url, Replay::ConnectOnly, || {
                let mut request = self
                    .envd_request(Method::POST, url.clone())
                    .header(http::header::CONTENT_TYPE, CONNECT_JSON)
                    .header("Connect-Protocol-Version", "1")
                    .header("Connect-Accept-Encoding", "identity")
                    .header("Keepalive-Ping-Interval", keepalive.to_string())
                    .body(body.clone());
                if let Some(timeout) = options.timeout {
                    request = request.header("Connect-Timeout-Ms", timeout.as_millis().max(1).to_string());
                }
                Ok(request)
            })
            .await?;
        if response.status() != StatusCode::OK {
            return Err(self.rpc_error(METHOD, response, &url, attempts).await);
        }
        let content_type = response.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if !content_type.is_some_and(|t| t.starts_with(CONNECT_JSON)) {
            return Err(E2bError::Protocol {
                url: url.to_string(),
                detail: format!("expected {CONNECT_JSON}, got {}", content_type.unwrap_or("no content type")),
            });
        }
        let mut reader = EventReader {
            body: response.bytes_stream().boxed(),
            decoder: EnvelopeDecoder::default(),
            done: false,
            ended: false,
            url: url.to_string(),
            sandbox_id: self.id.clone(),
        };
        let pid = match reader.next_event().await {
            Some(Ok(ProcessEvent::Start(start))) => start.pid,
            Some(Ok(other)) => {
                return Err(E2bError::Protocol {
                    url: url.to_string(),
                    detail: format!("first event is not start: {other:?}"),
                });
            }
            Some(Err(e)) => return Err(e),
            None => return Err(E2bError::Protocol { url: url.to_string(), detail: "empty process stream".into() }),
        };
        let events = futures::stream::unfold(reader, |mut reader| async move {
            reader.next_event().await.map(|event| (event, reader))
        })
        .boxed();
        Ok(ProcessStream { pid, events })
    }
}

fn partial_name(local: &Path) -> PathBuf {
    let name = local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    local.with_file_name(format!(".{name}.part-{}", std::process::id()))
}

async fn write_body(response: Response, mut file: tokio::fs::File, path: &Path, url: &Url) -> Result<u64, E2bError> {
    let io = |source| E2bError::Io { path: path.to_path_buf(), source };
    let mut body = response.bytes_stream();
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| transport_error(e, url, "the download"))?;
        file.write_all(&chunk).await.map_err(io)?;
        written += chunk.len() as u64;
    }
    file.flush().await.map_err(io)?;
    // Durable before it is renamed into place; a FIFO or a device has nothing to sync.
    if file.metadata().await.is_ok_and(|m| m.is_file()) {
        file.sync_all().await.map_err(io)?;
    }
    Ok(written)
}

/// Reads process events off a Connect stream.
struct EventReader {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    decoder: EnvelopeDecoder,
    done: bool,
    /// The `end` event was seen.
    ended: bool,
    url: String,
    sandbox_id: String,
}

impl EventReader {
    fn protocol(&mut self, detail: impl Into<String>) -> Option<Result<ProcessEvent, E2bError>> {
        self.done = true;
        Some(Err(E2bError::Protocol { url: self.url.clone(), detail: detail.into() }))
    }

    async fn next_event(&mut self) -> Option<Result<ProcessEvent, E2bError>> {
        loop {
            if self.done {
                return None;
            }
            match self.decoder.next_envelope() {
                Err(e) => return self.protocol(e.to_string()),
                Ok(Some(envelope)) if envelope.is_end_stream() => return self.end_of_stream(&envelope.payload),
                Ok(Some(envelope)) => match decode_event(&envelope.payload) {
                    Ok(Some(event)) => {
                        self.ended |= matches!(event, ProcessEvent::End(_));
                        return Some(Ok(event));
                    }
                    Ok(None) => continue,
                    Err(detail) => return self.protocol(detail),
                },
                Ok(None) => {}
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.decoder.push(&chunk),
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(E2bError::Transport { url: self.url.clone(), reason: root_cause(&e) }));
                }
                None => {
                    if let Err(e) = self.decoder.finish() {
                        return self.protocol(e.to_string());
                    }
                    // envd always ends with an end-of-stream message, but the SDK tolerates
                    // its absence after `end`; so do we.
                    if self.ended {
                        self.done = true;
                        return None;
                    }
                    return self.protocol("the process stream closed before the process ended");
                }
            }
        }
    }

    fn end_of_stream(&mut self, payload: &[u8]) -> Option<Result<ProcessEvent, E2bError>> {
        self.done = true;
        match serde_json::from_slice::<EndOfStream>(payload) {
            Ok(EndOfStream { error: Some(e) }) => Some(Err(E2bError::Rpc {
                method: "process.Process/Start",
                sandbox_id: self.sandbox_id.clone(),
                code: e.code,
                message: e.message,
            })),
            Ok(EndOfStream { error: None }) if self.ended => None,
            Ok(EndOfStream { error: None }) => self.protocol("the process stream ended without an end event"),
            Err(e) => self.protocol(format!("bad end-of-stream message: {e}")),
        }
    }
}

/// One process event; `None` for an event kind this client does not know (newer envd).
fn decode_event(payload: &[u8]) -> Result<Option<ProcessEvent>, String> {
    match serde_json::from_slice::<StartResponse>(payload) {
        Ok(response) => Ok(Some(response.event)),
        Err(e) => {
            const KNOWN: [&str; 4] = ["start", "data", "end", "keepalive"];
            let value: serde_json::Value = serde_json::from_slice(payload).map_err(|_| format!("bad event: {e}"))?;
            let unknown_kind = value
                .get("event")
                .and_then(|event| event.as_object())
                .is_some_and(|event| !event.keys().any(|k| KNOWN.contains(&k.as_str())));
            if unknown_kind { Ok(None) } else { Err(format!("bad event: {e}")) }
        }
    }
}

/// The events of a started process (after `start`): `data`, `keepalive`, then one `end`.
pub struct ProcessStream {
    pid: u32,
    events: BoxStream<'static, Result<ProcessEvent, E2bError>>,
}

impl std::fmt::Debug for ProcessStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessStream").field("pid", &self.pid).finish_non_exhaustive()
    }
}

impl ProcessStream {
    /// The process id in the sandbox (for [`Sandbox::send_signal`]).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Reads the stream to its end, gathering the output.
    pub async fn into_output(mut self) -> Result<ProcessOutput, E2bError> {
        let mut output = ProcessOutput { pid: self.pid, ..Default::default() };
        let mut end = None;
        while let Some(event) = self.events.next().await {
            match event? {
                ProcessEvent::Data(DataEvent::Stdout(b)) | ProcessEvent::Data(DataEvent::Pty(b)) => {
                    output.stdout.extend_from_slice(&b)
                }
                ProcessEvent::Data(DataEvent::Stderr(b)) => output.stderr.extend_from_slice(&b),
                ProcessEvent::End(e) => end = Some(e),
                ProcessEvent::Start(_) | ProcessEvent::Keepalive(_) => {}
            }
        }
        output.end = end.ok_or_else(|| E2bError::Protocol {
            url: String::new(),
            detail: "the process stream ended without an end event".into(),
        })?;
        Ok(output)
    }
}

impl Stream for ProcessStream {
    type Item = Result<ProcessEvent, E2bError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_next_unpin(cx)
    }
}
