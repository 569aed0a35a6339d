//! Small HTTP helpers shared by the control plane and envd: bodies, JSON answers, bounded
//! request reading, query parsing.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde::Serialize;

use crate::e2b::protocol::{ApiError, ConnectError};

/// Every response body of the server.
pub(crate) type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// The largest JSON request accepted (RPC requests and control-plane bodies are tiny).
pub(crate) const MAX_JSON_BODY: usize = 1024 * 1024;

pub(crate) fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    response
}

pub(crate) fn bytes(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => bytes(status, "application/json", body),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the answer: {e}")),
    }
}

/// E2B's error body: `{"code": <status>, "message": …}`.
pub(crate) fn api_error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let body = ApiError { code: i32::from(status.as_u16()), message: message.into(), error_code: None };
    json(status, &body)
}

/// A unary Connect error: the code's HTTP status and `{"code": "...", "message": …}`.
pub(crate) fn connect_error(error: &ConnectError) -> Response<Body> {
    json(StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), error)
}

/// A streaming body from a stream of chunks.
pub(crate) fn streaming(
    status: StatusCode,
    content_type: &'static str,
    chunks: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
) -> Response<Body> {
    let body = StreamBody::new(chunks.map(|chunk| chunk.map(Frame::data)));
    let mut response = Response::new(BodyExt::boxed_unsync(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Why a request body could not be read.
pub(crate) enum ReadError {
    TooLarge,
    Broken(String),
}

/// Reads a whole request body of at most `limit` bytes.
pub(crate) async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, ReadError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Broken(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(ReadError::TooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.into())
}

/// The request body as a stream of data chunks (trailers dropped).
pub(crate) fn body_stream(body: Incoming) -> impl Stream<Item = Result<Bytes, hyper::Error>> + Send + 'static {
    http_body_util::BodyStream::new(body)
        .filter_map(|frame| std::future::ready(frame.map(|f| f.into_data().ok()).transpose()))
}

/// The value of `name` in the request's query string.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// A request header as text.
pub(crate) fn header_str<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
