//! A local E2B-compatible sandbox server: the subset of E2B's control plane and of envd that
//! the E2B adapter and the official SDK use, running each sandbox as local processes in its own
//! directory. `osiris sandbox serve` runs it; tests and benches run it in-process:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use osiris_adapters::sandbox::SandboxServer;
//! let server = SandboxServer::builder()
//!     .api_key("test-key")
//!     .api_addr("127.0.0.1:0".parse()?)
//!     .envd_addr("127.0.0.1:0".parse()?)
//!     .bind()
//!     .await?;
//! println!("E2B_API_URL={} E2B_SANDBOX_URL={}", server.api_url(), server.envd_url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! There is no isolation: processes run as the user running the server, with the sandbox
//! directory as their home. Paths are confined to that home at the API level only.

mod api;
mod envd;
mod http;
pub mod paths;
mod process;
mod state;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use state::State;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("no API key: pass --api-key or set E2B_API_KEY; clients must send it as X-API-Key")]
    MissingApiKey,
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot use {path} as the sandboxes' root directory: {source}")]
    Root { path: PathBuf, source: std::io::Error },
}

/// Entry point: [`SandboxServer::builder`].
pub struct SandboxServer;

impl SandboxServer {
    pub fn builder() -> SandboxServerBuilder {
        SandboxServerBuilder::default()
    }
}

/// Settings of a [`SandboxServer`].
pub struct SandboxServerBuilder {
    api_key: Option<String>,
    root: Option<PathBuf>,
    api_addr: SocketAddr,
    envd_addr: SocketAddr,
    keep: bool,
    templates: HashMap<String, PathBuf>,
}

impl std::fmt::Debug for SandboxServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxServerBuilder")
            .field("root", &self.root)
            .field("api_addr", &self.api_addr)
            .field("envd_addr", &self.envd_addr)
            .field("keep", &self.keep)
            .field("templates", &self.templates)
            .finish_non_exhaustive()
    }
}

impl Default for SandboxServerBuilder {
    fn default() -> Self {
        SandboxServerBuilder {
            api_key: None,
            root: None,
            api_addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            envd_addr: SocketAddr::from(([127, 0, 0, 1], crate::e2b::protocol::ENVD_PORT)),
            keep: false,
            templates: HashMap::new(),
        }
    }
}

impl SandboxServerBuilder {
    /// The key clients must send as `X-API-Key` (required).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Where sandbox directories are made (default: a new temporary directory, removed at
    /// shutdown unless [`keep`](Self::keep)).
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }

    /// The control plane's address (default `127.0.0.1:3000`; port 0 picks a free one).
    pub fn api_addr(mut self, addr: SocketAddr) -> Self {
        self.api_addr = addr;
        self
    }

    /// envd's address (default `127.0.0.1:49983`; port 0 picks a free one).
    pub fn envd_addr(mut self, addr: SocketAddr) -> Self {
        self.envd_addr = addr;
        self
    }

    /// Keep sandbox directories when sandboxes are killed or expire (for inspection).
    pub fn keep(mut self, keep: bool) -> Self {
        self.keep = keep;
        self
    }

    /// Sandboxes created from template `name` start with the files of `dir` in their home, as an
    /// E2B custom template bakes files into its image (`osiris sandbox stage-binary` puts the
    /// binary where the E2B adapter looks for it). Other template names start empty.
    pub fn template_dir(mut self, name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        self.templates.insert(name.into(), dir.into());
        self
    }

    /// Binds both listeners and starts serving (on the current tokio runtime).
    pub async fn bind(self) -> Result<RunningServer, ServerError> {
        let api_key = self.api_key.filter(|k| !k.is_empty()).ok_or(ServerError::MissingApiKey)?;
        let (root, temporary_root) = match self.root {
            Some(root) => (root, false),
            None => (std::env::temp_dir().join(format!("osiris-sandboxes-{}", state::random_id(10))), true),
        };
        std::fs::create_dir_all(&root).map_err(|source| ServerError::Root { path: root.clone(), source })?;
        let root = root.canonicalize().map_err(|source| ServerError::Root { path: root.clone(), source })?;
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })
        };
        let api = bind(self.api_addr).await?;
        let envd = bind(self.envd_addr).await?;
        let local = |l: &TcpListener, addr| l.local_addr().map_err(|source| ServerError::Bind { addr, source });
        let (api_addr, envd_addr) = (local(&api, self.api_addr)?, local(&envd, self.envd_addr)?);
        let state = Arc::new(State {
            api_key,
            root,
            keep: self.keep,
            templates: self.templates,
            sandboxes: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
        });
        let tasks = vec![
            tokio::spawn(serve(api, state.clone(), Role::Api)),
            tokio::spawn(serve(envd, state.clone(), Role::Envd)),
        ];
        Ok(RunningServer { api_addr, envd_addr, state, tasks, temporary_root })
    }
}

/// A server that is serving. Dropping it stops the listeners and kills every sandbox process;
/// [`RunningServer::shutdown`] also removes the sandbox directories.
pub struct RunningServer {
    api_addr: SocketAddr,
    envd_addr: SocketAddr,
    state: Arc<State>,
    tasks: Vec<JoinHandle<()>>,
    temporary_root: bool,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("api_url", &self.api_url())
            .field("envd_url", &self.envd_url())
            .field("root", &self.state.root)
            .finish_non_exhaustive()
    }
}

impl RunningServer {
    /// The control-plane URL (`E2B_API_URL`).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    /// The envd URL (`E2B_SANDBOX_URL`).
    pub fn envd_url(&self) -> String {
        format!("http://{}", self.envd_addr)
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    pub fn envd_addr(&self) -> SocketAddr {
        self.envd_addr
    }

    /// Where sandbox directories are.
    pub fn root(&self) -> &Path {
        &self.state.root
    }

    /// The home directory of a live sandbox.
    pub fn sandbox_home(&self, sandbox_id: &str) -> Option<PathBuf> {
        self.state.get(sandbox_id).map(|s| s.home.clone())
    }

    /// How many sandboxes are alive.
    pub fn sandbox_count(&self) -> usize {
        state::lock(&self.state.sandboxes).len()
    }

    /// Stops serving, kills every sandbox and removes their directories (unless `keep`), and the
    /// root when the server made it.
    pub async fn shutdown(self) {
        self.state.shutdown.cancel();
        self.state.kill_all().await;
        if self.temporary_root && !self.state.keep {
            let _ = tokio::fs::remove_dir_all(&self.state.root).await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.state.shutdown.cancel();
        for task in &self.tasks {
            task.abort();
        }
        for sandbox in state::lock(&self.state.sandboxes).values() {
            sandbox.killed.cancel();
            sandbox.kill_processes();
        }
    }
}

#[derive(Clone, Copy)]
enum Role {
    Api,
    Envd,
}

/// Accepts connections until shutdown; each is served over HTTP/1.1 (chunked bodies both ways).
async fn serve(listener: TcpListener, state: Arc<State>, role: Role) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = state.shutdown.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let shutdown = state.shutdown.clone();
            let service = service_fn(move |request| {
                let state = state.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(match role {
                        Role::Api => api::handle(state, request).await,
                        Role::Envd => envd::handle(state, request).await,
                    })
                }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}
