//! E2B's wire protocol: the control-plane REST API and envd (files over HTTP, processes and the
//! filesystem over Connect-RPC with the JSON codec). `reference/e2b-protocol.md` in the shared
//! notes describes every message; [`protocol`] and [`envelope`] are shared by the [`client`] and
//! the local sandbox server ([`crate::sandbox`]).

pub mod adapter;
pub mod client;
pub mod envelope;
pub mod protocol;
pub mod retry;

pub use client::{E2bClient, E2bClientBuilder, E2bError, ProcessOutput, ProcessStream, Sandbox, StartOptions};
pub use protocol::{
    Code, ConnectError, CreatedSandbox, DataEvent, EndEvent, EntryInfo, FileType, NewSandbox, ProcessConfig,
    ProcessEvent, ProcessInfo, SandboxDetail, Signal, UploadedEntry,
};
pub use retry::RetryPolicy;
