//! The messages of E2B's wire protocol, written by hand: the control-plane REST bodies and the
//! Connect-RPC JSON messages of envd's `process` and `filesystem` services.
//!
//! The Connect messages follow the proto3 JSON mapping that envd (Go `protojson`) and the
//! official SDK (`protobuf-py`) use: lowerCamelCase keys (snake_case accepted on input), default
//! values omitted on output and assumed when absent, `bytes` as padded standard base64, enums by
//! name, `int64` as a JSON string, unknown fields ignored. A `oneof` is a Rust enum whose variant
//! name is the JSON key (`{"event":{"start":{"pid":42}}}`). The client and the local sandbox
//! server share these types, so both ends speak exactly the same dialect.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The port envd listens on inside every sandbox.
pub const ENVD_PORT: u16 = 49983;

/// The envd version the local sandbox server reports (the one this protocol was read from).
pub const ENVD_VERSION: &str = "0.6.13";

/// The default home and working directory of the sandbox user.
pub const SANDBOX_HOME: &str = "/home/user";

fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

// ---------------------------------------------------------------------------------------------
// Control plane (REST, `https://api.{domain}`)
// ---------------------------------------------------------------------------------------------

/// Body of `POST /v2/sandboxes` (and `POST /sandboxes`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSandbox {
    /// Template id or alias (`base` is E2B's default).
    #[serde(rename = "templateID")]
    pub template_id: String,
    /// Lifetime in seconds from now; the sandbox is killed when it expires.
    #[serde(default)]
    pub timeout: u32,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Sandbox-wide environment variables, applied to every process.
    #[serde(default)]
    pub env_vars: BTreeMap<String, String>,
}

/// The `201` answer to a create: how to reach the new sandbox.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedSandbox {
    #[serde(rename = "sandboxID")]
    pub sandbox_id: String,
    #[serde(rename = "templateID", default)]
    pub template_id: String,
    /// Deprecated by E2B, still required in its schema.
    #[serde(rename = "clientID", default)]
    pub client_id: String,
    #[serde(default)]
    pub envd_version: String,
    /// Sent as `X-Access-Token` on every envd request when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envd_access_token: Option<String>,
    /// The domain envd is reached under; `null` means the configured one.
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

impl std::fmt::Debug for CreatedSandbox {
    // The access token is a secret: never in Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedSandbox")
            .field("sandbox_id", &self.sandbox_id)
            .field("template_id", &self.template_id)
            .field("envd_version", &self.envd_version)
            .field("envd_access_token", &self.envd_access_token.as_ref().map(|_| "***"))
            .field("domain", &self.domain)
            .finish()
    }
}

/// `GET /sandboxes/{id}`: a running sandbox and its size.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxDetail {
    #[serde(rename = "sandboxID")]
    pub sandbox_id: String,
    #[serde(rename = "templateID", default)]
    pub template_id: String,
    #[serde(rename = "clientID", default)]
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub started_at: String,
    /// RFC 3339: when the sandbox's timeout expires.
    #[serde(default)]
    pub end_at: String,
    #[serde(default)]
    pub cpu_count: u32,
    #[serde(rename = "memoryMB", default)]
    pub memory_mb: u64,
    #[serde(rename = "diskSizeMB", default)]
    pub disk_size_mb: u64,
    #[serde(default)]
    pub envd_version: String,
    /// `running` or `paused`.
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envd_access_token: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
}

impl std::fmt::Debug for SandboxDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxDetail")
            .field("sandbox_id", &self.sandbox_id)
            .field("template_id", &self.template_id)
            .field("started_at", &self.started_at)
            .field("end_at", &self.end_at)
            .field("cpu_count", &self.cpu_count)
            .field("memory_mb", &self.memory_mb)
            .field("disk_size_mb", &self.disk_size_mb)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Body of `POST /sandboxes/{id}/timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeoutRequest {
    /// Seconds from now.
    pub timeout: u32,
}

/// The error body of the control plane and of envd's HTTP endpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// The HTTP status.
    #[serde(default)]
    pub code: i32,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// One entry of the `POST /files` answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UploadedEntry {
    pub path: String,
    #[serde(default)]
    pub name: String,
    /// `file` or `dir`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

// ---------------------------------------------------------------------------------------------
// process.Process
// ---------------------------------------------------------------------------------------------

/// What to run: `cmd` is executed directly (no shell) with `args`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessConfig {
    pub cmd: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub envs: BTreeMap<String, String>,
    /// Working directory; default the user's home.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
}

/// `process.Process/Start`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartRequest {
    pub process: ProcessConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// `false` gives the process `/dev/null` as stdin; envd opens a pipe when absent, and
    /// programs that read stdin then hang.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<bool>,
}

/// One message of the `Start` (and `Connect`) stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartResponse {
    pub event: ProcessEvent,
}

/// `ProcessEvent.event`, a oneof.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessEvent {
    Start(StartEvent),
    Data(DataEvent),
    End(EndEvent),
    Keepalive(KeepAlive),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StartEvent {
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub pid: u32,
}

/// `DataEvent.output`, a oneof of raw bytes (base64 on the wire).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataEvent {
    Stdout(#[serde(with = "b64")] Vec<u8>),
    Stderr(#[serde(with = "b64")] Vec<u8>),
    Pty(#[serde(with = "b64")] Vec<u8>),
}

impl std::fmt::Debug for DataEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, bytes) = match self {
            DataEvent::Stdout(b) => ("Stdout", b),
            DataEvent::Stderr(b) => ("Stderr", b),
            DataEvent::Pty(b) => ("Pty", b),
        };
        write!(f, "{name}({:?})", String::from_utf8_lossy(bytes))
    }
}

/// How a process ended, in Go's `os.ProcessState` terms.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndEvent {
    /// `-1` when killed by a signal.
    #[serde(default, alias = "exit_code", skip_serializing_if = "is_zero_i32")]
    pub exit_code: i32,
    /// The process terminated normally (not by a signal).
    #[serde(default, skip_serializing_if = "is_false")]
    pub exited: bool,
    /// `exit status 3`, `signal: killed`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// The wait error, absent on a clean exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeepAlive {}

/// Which process an RPC is about (a oneof).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessSelector {
    Pid(u32),
    Tag(String),
}

/// `process.Process/Connect`: reattach to a running process's output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectRequest {
    pub process: ProcessSelector,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Signal {
    #[serde(rename = "SIGNAL_UNSPECIFIED")]
    Unspecified,
    #[serde(rename = "SIGNAL_SIGTERM")]
    Sigterm,
    #[serde(rename = "SIGNAL_SIGKILL")]
    Sigkill,
}

/// `process.Process/SendSignal`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendSignalRequest {
    pub process: ProcessSelector,
    pub signal: Signal,
}

/// `ProcessInput.input`, a oneof of raw bytes (base64 on the wire).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessInput {
    Stdin(#[serde(with = "b64")] Vec<u8>),
    Pty(#[serde(with = "b64")] Vec<u8>),
}

/// `process.Process/SendInput`: bytes for a process's stdin (started with `stdin: true`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendInputRequest {
    pub process: ProcessSelector,
    pub input: ProcessInput,
}

/// `process.Process/CloseStdin`: the process reads the end of its input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CloseStdinRequest {
    pub process: ProcessSelector,
}

/// `process.Process/List` has an empty request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ListRequest {}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ListResponse {
    #[serde(default)]
    pub processes: Vec<ProcessInfo>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    #[serde(default)]
    pub config: ProcessConfig,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// Responses that carry nothing (`SendSignal`, …): `{}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Empty {}

// ---------------------------------------------------------------------------------------------
// filesystem.Filesystem
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatRequest {
    pub path: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatResponse {
    #[serde(default)]
    pub entry: Option<EntryInfo>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ListDirRequest {
    pub path: String,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub depth: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ListDirResponse {
    #[serde(default)]
    pub entries: Vec<EntryInfo>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileType {
    #[default]
    #[serde(rename = "FILE_TYPE_UNSPECIFIED")]
    Unspecified,
    #[serde(rename = "FILE_TYPE_FILE")]
    File,
    #[serde(rename = "FILE_TYPE_DIRECTORY")]
    Directory,
    #[serde(rename = "FILE_TYPE_SYMLINK")]
    Symlink,
}

/// A file or directory in the sandbox.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryInfo {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub file_type: FileType,
    /// Absolute path in the sandbox.
    #[serde(default)]
    pub path: String,
    /// int64: a JSON string on the wire.
    #[serde(default, with = "int64")]
    pub size: i64,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub mode: u32,
    /// `-rw-r--r--`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub permissions: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// RFC 3339.
    #[serde(default, alias = "modified_time", skip_serializing_if = "Option::is_none")]
    pub modified_time: Option<String>,
    #[serde(default, alias = "symlink_target", skip_serializing_if = "Option::is_none")]
    pub symlink_target: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Connect errors
// ---------------------------------------------------------------------------------------------

/// A Connect error code (the lower_snake names on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    Canceled,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
    /// `unknown`, and any code this version does not know.
    #[serde(other)]
    Unknown,
}

impl Code {
    /// The wire name (`invalid_argument`).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Canceled => "canceled",
            Code::Unknown => "unknown",
            Code::InvalidArgument => "invalid_argument",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::NotFound => "not_found",
            Code::AlreadyExists => "already_exists",
            Code::PermissionDenied => "permission_denied",
            Code::ResourceExhausted => "resource_exhausted",
            Code::FailedPrecondition => "failed_precondition",
            Code::Aborted => "aborted",
            Code::OutOfRange => "out_of_range",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
            Code::DataLoss => "data_loss",
            Code::Unauthenticated => "unauthenticated",
        }
    }

    /// The HTTP status a unary error with this code is sent with (Connect protocol table).
    pub fn http_status(self) -> u16 {
        match self {
            Code::Canceled | Code::DeadlineExceeded => 408,
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
            Code::NotFound | Code::Unimplemented => 404,
            Code::AlreadyExists | Code::Aborted => 409,
            Code::PermissionDenied => 403,
            Code::ResourceExhausted => 429,
            Code::Unavailable => 503,
            Code::Unauthenticated => 401,
            Code::Unknown | Code::Internal | Code::DataLoss => 500,
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Connect error: the body of a failed unary call, or the `error` of an end-of-stream message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectError {
    pub code: Code,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl ConnectError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ConnectError { code, message: message.into() }
    }
}

/// The payload of the end-of-stream envelope: `{}` or `{"error":{…}}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EndOfStream {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ConnectError>,
}

/// proto3 JSON `bytes`: standard base64 with padding (unpadded and URL-safe accepted on input).
mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text.as_bytes()).ok())
            .ok_or_else(|| serde::de::Error::custom("invalid base64 in a bytes field"))
    }
}

/// proto3 JSON `int64`: written as a string, read from a string or a number.
mod int64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(i64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Number(n) => Ok(n),
            Repr::Text(t) => t.parse().map_err(|_| serde::de::Error::custom(format!("'{t}' is not an int64"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn start_request_matches_the_sdk_shape() {
        let request = StartRequest {
            process: ProcessConfig {
                cmd: "/bin/sh".into(),
                args: vec!["-c".into(), "echo hi".into()],
                ..Default::default()
            },
            stdin: Some(false),
            tag: None,
        };
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"process":{"cmd":"/bin/sh","args":["-c","echo hi"]},"stdin":false}"#
        );
        // The SDK's body, with an unknown field: decoded, extras ignored.
        let sdk: StartRequest = serde_json::from_value(json!({
            "process": {"cmd": "/bin/bash", "args": ["-l", "-c", "ls"], "envs": {"A": "1"}, "cwd": "/home/user"},
            "stdin": false, "pty": null, "future": 1
        }))
        .unwrap();
        assert_eq!(sdk.process.envs["A"], "1");
        assert_eq!(sdk.process.cwd.as_deref(), Some("/home/user"));
    }

    #[test]
    fn process_events_round_trip_the_reference_examples() {
        let cases = [
            (r#"{"event":{"start":{"pid":42}}}"#, ProcessEvent::Start(StartEvent { pid: 42 })),
            (r#"{"event":{"data":{"stdout":"aGkK"}}}"#, ProcessEvent::Data(DataEvent::Stdout(b"hi\n".to_vec()))),
            (
                r#"{"event":{"end":{"exitCode":3,"exited":true,"status":"exit status 3","error":"exit status 3"}}}"#,
                ProcessEvent::End(EndEvent {
                    exit_code: 3,
                    exited: true,
                    status: "exit status 3".into(),
                    error: Some("exit status 3".into()),
                }),
            ),
            (r#"{"event":{"keepalive":{}}}"#, ProcessEvent::Keepalive(KeepAlive {})),
        ];
        for (text, event) in cases {
            let decoded: StartResponse = serde_json::from_str(text).unwrap();
            assert_eq!(decoded.event, event);
            assert_eq!(serde_json::to_string(&StartResponse { event }).unwrap(), text);
        }
    }

    #[test]
    fn defaults_are_omitted_and_assumed() {
        // A clean exit: exitCode 0 is omitted by protojson.
        let end: StartResponse =
            serde_json::from_str(r#"{"event":{"end":{"exited":true,"status":"exit status 0"}}}"#).unwrap();
        assert_eq!(
            end.event,
            ProcessEvent::End(EndEvent { exited: true, status: "exit status 0".into(), ..Default::default() })
        );
        let killed = EndEvent { exit_code: -1, status: "signal: killed".into(), ..Default::default() };
        assert_eq!(serde_json::to_string(&killed).unwrap(), r#"{"exitCode":-1,"status":"signal: killed"}"#);
        let snake: EndEvent = serde_json::from_str(r#"{"exit_code":7}"#).unwrap();
        assert_eq!(snake.exit_code, 7);
    }

    #[test]
    fn input_is_base64_stdin_bytes() {
        let request =
            SendInputRequest { process: ProcessSelector::Pid(7), input: ProcessInput::Stdin(b"hi\n".to_vec()) };
        assert_eq!(serde_json::to_string(&request).unwrap(), r#"{"process":{"pid":7},"input":{"stdin":"aGkK"}}"#);
        let back: SendInputRequest = serde_json::from_str(r#"{"process":{"tag":"w"},"input":{"pty":"AA=="}}"#).unwrap();
        assert_eq!(back.input, ProcessInput::Pty(vec![0]));
    }

    #[test]
    fn signal_and_selector_use_proto_names() {
        let request = SendSignalRequest { process: ProcessSelector::Pid(7), signal: Signal::Sigkill };
        assert_eq!(serde_json::to_string(&request).unwrap(), r#"{"process":{"pid":7},"signal":"SIGNAL_SIGKILL"}"#);
        let back: SendSignalRequest =
            serde_json::from_str(r#"{"process":{"tag":"w"},"signal":"SIGNAL_SIGTERM"}"#).unwrap();
        assert_eq!(back.process, ProcessSelector::Tag("w".into()));
        assert_eq!(back.signal, Signal::Sigterm);
    }

    #[test]
    fn entry_size_is_an_int64_string() {
        let entry = EntryInfo {
            name: "a".into(),
            file_type: FileType::File,
            path: "/home/user/a".into(),
            size: 5_000_000_000,
            ..Default::default()
        };
        let text = serde_json::to_string(&StatResponse { entry: Some(entry.clone()) }).unwrap();
        assert_eq!(text, r#"{"entry":{"name":"a","type":"FILE_TYPE_FILE","path":"/home/user/a","size":"5000000000"}}"#);
        let back: StatResponse = serde_json::from_str(&text).unwrap();
        assert_eq!(back.entry, Some(entry));
        let number: EntryInfo = serde_json::from_str(r#"{"size":12}"#).unwrap();
        assert_eq!(number.size, 12);
    }

    #[test]
    fn connect_errors_parse_known_and_unknown_codes() {
        let e: ConnectError = serde_json::from_str(r#"{"code":"not_found","message":"nope","details":[]}"#).unwrap();
        assert_eq!(e, ConnectError::new(Code::NotFound, "nope"));
        let odd: ConnectError = serde_json::from_str(r#"{"code":"brand_new_code"}"#).unwrap();
        assert_eq!(odd.code, Code::Unknown);
        assert_eq!(Code::InvalidArgument.to_string(), "invalid_argument");
    }

    #[test]
    fn created_sandbox_debug_hides_the_token() {
        let created: CreatedSandbox = serde_json::from_value(json!({
            "sandboxID": "i1", "templateID": "base", "clientID": "c", "envdVersion": "0.6.13",
            "envdAccessToken": "tok-secret-123", "domain": null
        }))
        .unwrap();
        assert!(!format!("{created:?}").contains("tok-secret-123"));
        assert_eq!(created.domain, None);
    }
}
