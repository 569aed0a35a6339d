//! The envd side: one endpoint for every sandbox, which is chosen by the `E2b-Sandbox-Id`
//! header or a `49983-<id>.` host prefix. Files over plain HTTP, processes and the filesystem
//! over Connect with the JSON codec.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;

use super::http::{
    Body, MAX_JSON_BODY, ReadError, api_error, body_stream, bytes, connect_error, empty, header_str, json, query_param,
    read_body, streaming,
};
use super::paths::{self, SandboxPath};
use super::process::{self, StartParams};
use super::state::{SandboxEntry, State, same_secret};
use crate::e2b::envelope::{EnvelopeDecoder, end_of_stream};
use crate::e2b::protocol::{
    CloseStdinRequest, Code, ConnectError, ENVD_PORT, EntryInfo, FileType, ListDirRequest, ListDirResponse,
    SendInputRequest, SendSignalRequest, StartRequest, StatRequest, StatResponse, UploadedEntry,
};

const CONNECT_JSON: &str = "application/connect+json";

pub(crate) async fn handle(state: Arc<State>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_string();
    if request.method() == Method::GET && path == "/health" {
        return match sandbox_named(&request) {
            Some(id) if state.get(&id).is_none() => gone(&id),
            _ => empty(StatusCode::NO_CONTENT),
        };
    }
    let is_rpc = path.starts_with("/process.Process/") || path.starts_with("/filesystem.Filesystem/");
    if path != "/files" && !is_rpc {
        return api_error(StatusCode::NOT_FOUND, format!("no such envd endpoint: {} {path}", request.method()));
    }
    let sandbox = match authorize(&state, &request, is_rpc) {
        Ok(sandbox) => sandbox,
        Err(response) => return response,
    };
    match (request.method().clone(), path.as_str()) {
        (Method::GET, "/files") => download(&sandbox, &request).await,
        (Method::POST, "/files") => upload(&sandbox, request).await,
        (_, "/files") => api_error(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST on /files"),
        (Method::POST, _) => rpc(sandbox, request).await,
        _ => connect_error(&ConnectError::new(Code::Unimplemented, "Connect RPCs are POST requests")),
    }
}

/// The sandbox a request names: `E2b-Sandbox-Id`, else a `49983-<id>.<domain>` host.
fn sandbox_named(request: &Request<Incoming>) -> Option<String> {
    if let Some(id) = header_str(request.headers(), "e2b-sandbox-id").filter(|id| !id.is_empty()) {
        return Some(id.to_string());
    }
    let host = header_str(request.headers(), "host")?;
    let rest = host.strip_prefix(&format!("{ENVD_PORT}-"))?;
    rest.split_once('.').map(|(id, _)| id.to_string()).filter(|id| !id.is_empty())
}

/// What E2B's edge answers for a sandbox that is not running.
fn gone(id: &str) -> Response<Body> {
    api_error(StatusCode::BAD_GATEWAY, format!("sandbox '{id}' not found: it was killed or its timeout expired"))
}

/// The sandbox, if the request names a live one and carries its access token.
#[allow(clippy::result_large_err)]
fn authorize(state: &State, request: &Request<Incoming>, is_rpc: bool) -> Result<Arc<SandboxEntry>, Response<Body>> {
    let Some(id) = sandbox_named(request) else {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "no sandbox named: send the E2b-Sandbox-Id header (or use a 49983-<sandbox id>.<domain> host)",
        ));
    };
    let sandbox = state.get(&id).ok_or_else(|| gone(&id))?;
    let token = header_str(request.headers(), "x-access-token").unwrap_or_default();
    if same_secret(token.as_bytes(), sandbox.token.as_bytes()) {
        return Ok(sandbox);
    }
    let message = if token.is_empty() {
        "missing X-Access-Token header: send the envdAccessToken of the create answer"
    } else {
        "invalid X-Access-Token for this sandbox"
    };
    Err(if is_rpc {
        connect_error(&ConnectError::new(Code::Unauthenticated, message))
    } else {
        api_error(StatusCode::UNAUTHORIZED, message)
    })
}

#[allow(clippy::result_large_err)]
fn resolve(sandbox: &SandboxEntry, path: Option<String>) -> Result<SandboxPath, Response<Body>> {
    let path = path.ok_or_else(|| api_error(StatusCode::BAD_REQUEST, "the path query parameter is required"))?;
    paths::resolve(&sandbox.home, &path).map_err(|m| api_error(StatusCode::BAD_REQUEST, m))
}

/// `GET /files?path=`: the raw bytes, streamed.
async fn download(sandbox: &SandboxEntry, request: &Request<Incoming>) -> Response<Body> {
    let path = match resolve(sandbox, query_param(request.uri().query(), "path")) {
        Ok(path) => path,
        Err(response) => return response,
    };
    let file = match tokio::fs::File::open(&path.host).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return api_error(StatusCode::NOT_FOUND, format!("path '{}' does not exist", path.sandbox));
        }
        Err(e) => return api_error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot open '{}': {e}", path.sandbox)),
    };
    let metadata = match file.metadata().await {
        Ok(m) if m.is_dir() => {
            return api_error(StatusCode::BAD_REQUEST, format!("path '{}' is a directory", path.sandbox));
        }
        Ok(m) => m,
        Err(e) => return api_error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read '{}': {e}", path.sandbox)),
    };
    let chunks = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
    let mut response = streaming(StatusCode::OK, "application/octet-stream", chunks);
    response.headers_mut().insert(header::CONTENT_LENGTH, metadata.len().into());
    response
}

/// `POST /files`: multipart `file` parts, or a raw `application/octet-stream` body.
async fn upload(sandbox: &SandboxEntry, request: Request<Incoming>) -> Response<Body> {
    let query_path = query_param(request.uri().query(), "path");
    let content_type = header_str(request.headers(), "content-type").unwrap_or_default().to_string();
    if header_str(request.headers(), "content-encoding").is_some_and(|e| !e.eq_ignore_ascii_case("identity")) {
        return api_error(StatusCode::BAD_REQUEST, "compressed uploads are not supported by the local sandbox server");
    }
    let written = if content_type.starts_with("multipart/form-data") {
        upload_multipart(sandbox, query_path, &content_type, request.into_body()).await
    } else if content_type.is_empty() || content_type.starts_with("application/octet-stream") {
        match resolve(sandbox, query_path) {
            Ok(target) => write_stream(&target, body_stream(request.into_body())).await.map(|entry| vec![entry]),
            Err(response) => Err(response),
        }
    } else {
        Err(api_error(
            StatusCode::BAD_REQUEST,
            format!("unsupported Content-Type '{content_type}': use multipart/form-data or application/octet-stream"),
        ))
    };
    match written {
        Ok(entries) => json(StatusCode::OK, &entries),
        Err(response) => response,
    }
}

async fn upload_multipart(
    sandbox: &SandboxEntry,
    query_path: Option<String>,
    content_type: &str,
    body: Incoming,
) -> Result<Vec<UploadedEntry>, Response<Body>> {
    let bad = |message: String| api_error(StatusCode::BAD_REQUEST, message);
    let boundary = multer::parse_boundary(content_type).map_err(|e| bad(format!("bad multipart body: {e}")))?;
    let mut multipart = multer::Multipart::new(body_stream(body), boundary);
    let mut entries = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(bad(format!("bad multipart body: {e}"))),
        };
        if field.name() != Some("file") {
            continue;
        }
        let target = resolve(sandbox, query_path.clone().or_else(|| field.file_name().map(str::to_string)))?;
        entries.push(write_stream(&target, field).await?);
    }
    if entries.is_empty() {
        return Err(bad("the multipart body has no part named 'file'".into()));
    }
    Ok(entries)
}

/// Writes a body to `target`, creating its parents and replacing what was there.
async fn write_stream<E: std::fmt::Display>(
    target: &SandboxPath,
    mut chunks: impl futures::Stream<Item = Result<Bytes, E>> + Unpin,
) -> Result<UploadedEntry, Response<Body>> {
    let shown = &target.sandbox;
    if target.host.is_dir() {
        return Err(api_error(StatusCode::BAD_REQUEST, format!("path '{shown}' is a directory")));
    }
    let failed = |e: std::io::Error| {
        let status =
            if e.raw_os_error() == Some(28) { StatusCode::INSUFFICIENT_STORAGE } else { StatusCode::BAD_REQUEST };
        api_error(status, format!("cannot write '{shown}': {e}"))
    };
    if let Some(parent) = target.host.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(failed)?;
    }
    let mut file = tokio::fs::File::create(&target.host).await.map_err(failed)?;
    while let Some(chunk) = chunks.next().await {
        let chunk =
            chunk.map_err(|e| api_error(StatusCode::BAD_REQUEST, format!("upload of '{shown}' broke off: {e}")))?;
        file.write_all(&chunk).await.map_err(failed)?;
    }
    file.flush().await.map_err(failed)?;
    let name = target.host.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(UploadedEntry { path: shown.clone(), name, kind: "file".into() })
}

/// Dispatches a Connect RPC.
async fn rpc(sandbox: Arc<SandboxEntry>, request: Request<Incoming>) -> Response<Body> {
    let method = request.uri().path().trim_start_matches('/').to_string();
    let content_type = header_str(request.headers(), "content-type").unwrap_or_default().to_string();
    if content_type.contains("proto") {
        let error = ConnectError::new(Code::Unimplemented, "this server speaks the Connect JSON codec only");
        let mut response = connect_error(&error);
        *response.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return response;
    }
    match method.as_str() {
        "process.Process/Start" => start(sandbox, request).await,
        "process.Process/SendSignal" => {
            unary(request, |r: SendSignalRequest| process::send_signal(&sandbox, &r).map(|()| serde_json::json!({})))
                .await
        }
        "process.Process/List" => unary(request, |_: serde_json::Value| Ok(process::list(&sandbox))).await,
        "process.Process/SendInput" => match unary_request::<SendInputRequest>(request).await {
            Ok(r) => answer(process::send_input(&sandbox, r).await),
            Err(response) => response,
        },
        "process.Process/CloseStdin" => match unary_request::<CloseStdinRequest>(request).await {
            Ok(r) => answer(process::close_stdin(&sandbox, &r).await),
            Err(response) => response,
        },
        "filesystem.Filesystem/Stat" => unary(request, |r: StatRequest| stat(&sandbox, &r.path)).await,
        "filesystem.Filesystem/ListDir" => unary(request, |r: ListDirRequest| list_dir(&sandbox, &r)).await,
        _ => connect_error(&ConnectError::new(Code::Unimplemented, format!("{method} is not implemented"))),
    }
}

/// A unary call: bare JSON in, bare JSON out.
async fn unary<Req: DeserializeOwned, Resp: Serialize>(
    request: Request<Incoming>,
    call: impl FnOnce(Req) -> Result<Resp, ConnectError>,
) -> Response<Body> {
    match unary_request::<Req>(request).await {
        Ok(message) => match call(message) {
            Ok(answer) => json(StatusCode::OK, &answer),
            Err(error) => connect_error(&error),
        },
        Err(response) => response,
    }
}

/// The bare JSON message of a unary call.
#[allow(clippy::result_large_err)]
async fn unary_request<Req: DeserializeOwned>(request: Request<Incoming>) -> Result<Req, Response<Body>> {
    let body = read_body(request.into_body(), MAX_JSON_BODY).await.map_err(|e| connect_error(&read_error(e)))?;
    let body = if body.is_empty() { Bytes::from_static(b"{}") } else { body };
    serde_json::from_slice::<Req>(&body)
        .map_err(|e| connect_error(&ConnectError::new(Code::InvalidArgument, format!("bad request message: {e}"))))
}

/// The answer of a call with an empty response message.
fn answer(outcome: Result<(), ConnectError>) -> Response<Body> {
    match outcome {
        Ok(()) => json(StatusCode::OK, &serde_json::json!({})),
        Err(error) => connect_error(&error),
    }
}

fn read_error(error: ReadError) -> ConnectError {
    match error {
        ReadError::TooLarge => ConnectError::new(Code::ResourceExhausted, "request message too large"),
        ReadError::Broken(e) => ConnectError::new(Code::InvalidArgument, format!("request body broke off: {e}")),
    }
}

/// `Process.Start`: one request envelope in, a stream of envelopes out. Errors found before the
/// process runs travel in the end-of-stream message of a 200 answer, as connect-go does.
async fn start(sandbox: Arc<SandboxEntry>, request: Request<Incoming>) -> Response<Body> {
    let millis = |name: &str| header_str(request.headers(), name).and_then(|v| v.trim().parse::<u64>().ok());
    let deadline = millis("connect-timeout-ms").map(Duration::from_millis);
    let keepalive = millis("keepalive-ping-interval").filter(|s| *s > 0).map(Duration::from_secs);
    let stream_error = |e: ConnectError| bytes(StatusCode::OK, CONNECT_JSON, end_of_stream(Some(e)));
    let start_request = match read_start_request(request.into_body()).await {
        Ok(r) => r,
        Err(e) => return stream_error(e),
    };
    match process::start(sandbox, StartParams { request: start_request, deadline, keepalive }) {
        Ok(receiver) => {
            let chunks =
                futures::stream::unfold(receiver, |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) });
            streaming(StatusCode::OK, CONNECT_JSON, chunks)
        }
        Err(e) => stream_error(e),
    }
}

async fn read_start_request(body: Incoming) -> Result<StartRequest, ConnectError> {
    let body = read_body(body, MAX_JSON_BODY).await.map_err(read_error)?;
    let mut decoder = EnvelopeDecoder::new(MAX_JSON_BODY);
    decoder.push(&body);
    let bad = |m: String| ConnectError::new(Code::InvalidArgument, m);
    let envelope = decoder
        .next_envelope()
        .map_err(|e| bad(e.to_string()))?
        .ok_or_else(|| bad("the request holds no complete Connect envelope (send application/connect+json)".into()))?;
    serde_json::from_slice(&envelope.payload).map_err(|e| bad(format!("bad StartRequest: {e}")))
}

/// `Filesystem.Stat`.
fn stat(sandbox: &SandboxEntry, path: &str) -> Result<StatResponse, ConnectError> {
    let target = paths::resolve(&sandbox.home, path).map_err(|m| ConnectError::new(Code::InvalidArgument, m))?;
    Ok(StatResponse { entry: Some(entry_info(&target)?) })
}

/// `Filesystem.ListDir` (depth 1 by default).
fn list_dir(sandbox: &SandboxEntry, request: &ListDirRequest) -> Result<ListDirResponse, ConnectError> {
    let target =
        paths::resolve(&sandbox.home, &request.path).map_err(|m| ConnectError::new(Code::InvalidArgument, m))?;
    let root = entry_info(&target)?;
    if root.file_type != FileType::Directory {
        return Err(ConnectError::new(Code::InvalidArgument, format!("path '{}' is not a directory", target.sandbox)));
    }
    let mut entries = Vec::new();
    walk(&target, request.depth.max(1), &mut entries)?;
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(ListDirResponse { entries })
}

fn walk(dir: &SandboxPath, depth: u32, out: &mut Vec<EntryInfo>) -> Result<(), ConnectError> {
    let read = std::fs::read_dir(&dir.host).map_err(|e| ConnectError::new(Code::Internal, e.to_string()))?;
    for item in read.flatten() {
        let name = item.file_name().to_string_lossy().into_owned();
        let child = SandboxPath { host: item.path(), sandbox: format!("{}/{name}", dir.sandbox.trim_end_matches('/')) };
        let info = entry_info(&child)?;
        let is_dir = info.file_type == FileType::Directory;
        out.push(info);
        if is_dir && depth > 1 {
            walk(&child, depth - 1, out)?;
        }
    }
    Ok(())
}

fn entry_info(target: &SandboxPath) -> Result<EntryInfo, ConnectError> {
    let metadata = std::fs::symlink_metadata(&target.host).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            ConnectError::new(Code::NotFound, format!("path '{}' does not exist", target.sandbox))
        }
        _ => ConnectError::new(Code::Internal, format!("cannot stat '{}': {e}", target.sandbox)),
    })?;
    let file_type = if metadata.is_symlink() {
        FileType::Symlink
    } else if metadata.is_dir() {
        FileType::Directory
    } else {
        FileType::File
    };
    let mode = metadata.permissions().mode() & 0o7777;
    Ok(EntryInfo {
        name: Path::new(&target.sandbox).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        file_type,
        path: target.sandbox.clone(),
        size: i64::try_from(metadata.len()).unwrap_or(i64::MAX),
        mode,
        permissions: permissions(file_type, mode),
        owner: String::new(),
        group: String::new(),
        modified_time: metadata
            .modified()
            .ok()
            .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
        symlink_target: metadata
            .is_symlink()
            .then(|| std::fs::read_link(&target.host).ok().map(|p| p.to_string_lossy().into_owned()))
            .flatten(),
    })
}

/// `-rwxr-xr-x`, as `ls -l` and envd print it.
fn permissions(file_type: FileType, mode: u32) -> String {
    let kind = match file_type {
        FileType::Directory => 'd',
        FileType::Symlink => 'l',
        _ => '-',
    };
    let mut text = String::from(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 0o7;
        text.push(if bits & 4 != 0 { 'r' } else { '-' });
        text.push(if bits & 2 != 0 { 'w' } else { '-' });
        text.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    text
}
