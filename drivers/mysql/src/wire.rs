//! A lean MySQL/MariaDB client for the extractor's hot path.
//!
//! mysql_async decodes every row into a `Row` of `Value`s (one heap allocation per string or
//! decimal cell) before anyone sees it; at millions of rows per second that decoding costs more
//! than the rest of the export. This client speaks the protocol itself, using mysql_common (the
//! protocol crate under mysql_async) for the handshake, authentication and column definitions,
//! and hands out each binary-protocol row packet as a slice of its read buffer, so the row decoder
//! (`decode.rs`) writes values straight into Arrow buffers.
//!
//! Supported: TCP with keepalive, TLS (rustls, see `tls.rs`), `mysql_native_password` and
//! `caching_sha2_password` (fast path, and full authentication: the password in clear over TLS,
//! else encrypted with the server's RSA key), auth switches, packets of any size, a read timeout
//! on every read and write. Not supported: compression.

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    AuthPlugin, AuthSwitchRequest, Column, HandshakePacket, HandshakeResponse, SslRequest, StmtPacket,
};
use mysql_common::proto::MyDeserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::tls::{SslMode, TlsOptions};

/// Largest payload of one protocol packet; longer payloads continue in the next packet.
const MAX_PAYLOAD: usize = 0xFF_FFFF;
/// Initial read buffer: large enough that one `read` usually carries hundreds of rows.
const READ_BUFFER: usize = 256 * 1024;

const COM_QUIT: u8 = 0x01;
const COM_QUERY: u8 = 0x03;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;

/// Why a protocol exchange failed.
#[derive(Debug)]
pub enum WireError {
    /// The server answered with an error packet.
    Server { code: u16, state: String, message: String },
    /// The socket failed.
    Io(io::Error),
    /// The server closed the connection.
    Closed,
    /// The server sent something this client does not understand or support.
    Protocol(String),
    /// No byte arrived (or could be sent) for this long: `read_timeout`.
    Timeout(Duration),
    /// The TLS handshake failed (certificate rejected, no common cipher...), or the TLS settings
    /// cannot be used (a file is missing).
    Tls(String),
    /// The ssl_mode requires TLS but the server does not offer it.
    NoTls,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Server { code, state, message } => write!(f, "{message} (error {code}, SQLSTATE {state})"),
            WireError::Io(e) => write!(f, "{e}"),
            WireError::Closed => write!(f, "the server closed the connection"),
            WireError::Protocol(m) => write!(f, "protocol error: {m}"),
            WireError::Timeout(d) => write!(f, "no data for {}", crate::session::show_duration(*d)),
            WireError::Tls(m) => write!(f, "TLS failed: {m}"),
            WireError::NoTls => write!(f, "the server does not offer TLS"),
        }
    }
}

impl std::error::Error for WireError {}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof { WireError::Closed } else { WireError::Io(e) }
    }
}

pub type Result<T> = std::result::Result<T, WireError>;

/// Where and as whom to connect.
#[derive(Clone)]
pub struct ConnectOptions {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: Option<String>,
    pub tls: TlsOptions,
    pub read_timeout: Duration,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("ConnectOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("database", &self.database)
            .field("tls", &self.tls)
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

/// A packet received: its payload lies in the read buffer, or (for payloads of 16 MiB and more,
/// split over several packets) in a separate assembly buffer.
#[derive(Clone, Debug)]
pub enum Packet {
    Buffered(Range<usize>),
    Assembled,
}

/// What the read buffer holds next, for [`Connection::buffered_row`].
pub enum Buffered {
    Row(Packet),
    /// The result set ended.
    End,
    /// The next packet is not all here: call [`Connection::read_more`].
    NeedData,
    /// The next row is split over several packets: call [`Connection::read_split_row`].
    Split,
}

enum Frame {
    Packet(Packet),
    /// This many unconsumed bytes are needed.
    NeedData(usize),
    Split,
}

/// The socket, in plaintext or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while the plaintext stream is being upgraded to TLS.
    Upgrading,
}

impl Stream {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
            Stream::Upgrading => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(data).await,
            Stream::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Stream::Upgrading => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(s) => s.shutdown().await,
            Stream::Upgrading => Ok(()),
        }
    }
}

/// The TLS session of a connection, as negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSession {
    /// `TLSv1.3`, `TLSv1.2`.
    pub version: String,
    /// The IANA name of the cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
}

/// What caching_sha2_password's full authentication sends first.
#[derive(Debug, PartialEq, Eq)]
enum FullAuth {
    /// Over TLS: the password itself, NUL-terminated (the channel is encrypted already).
    Clear(Vec<u8>),
    /// In plaintext: ask for the server's RSA public key (request byte 0x02).
    RequestPublicKey,
}

fn full_auth(password: &str, secure: bool) -> FullAuth {
    if secure {
        FullAuth::Clear(password.bytes().chain(std::iter::once(0)).collect())
    } else {
        FullAuth::RequestPublicKey
    }
}

/// Turns keepalive on (first probe after [`crate::session::KEEPALIVE`] idle, then every 10 s).
fn keepalive(stream: &TcpStream) -> io::Result<()> {
    let settings =
        socket2::TcpKeepalive::new().with_time(crate::session::KEEPALIVE).with_interval(Duration::from_secs(10));
    socket2::SockRef::from(stream).set_tcp_keepalive(&settings)
}

/// One connection.
pub struct Connection {
    stream: Stream,
    read_timeout: Duration,
    tls: Option<TlsSession>,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    large: Vec<u8>,
    seq: u8,
    capabilities: CapabilityFlags,
}

impl Connection {
    /// Connects and authenticates; the session then uses utf8mb4.
    pub async fn connect(opts: &ConnectOptions) -> Result<Connection> {
        let mut conn = Connection::open(opts).await?;
        conn.handshake(opts).await?;
        Ok(conn)
    }

    /// `VERIFY_CA` for a client that can only check names (mysql_async): runs the TLS handshake
    /// alone, checking the certificate chain, and returns `None` when the certificate names the
    /// host, else the usable names it holds (empty when it has none). Nothing is logged in.
    pub async fn certificate_names(opts: &ConnectOptions) -> Result<Option<Vec<String>>> {
        let mut conn = Connection::open(opts).await?;
        let packet = conn.read_owned().await?;
        if packet.first() == Some(&0xFF) {
            return Err(server_error(&packet, CapabilityFlags::empty()));
        }
        let handshake: HandshakePacket<'_> = parse(&packet, "the server greeting")?;
        if !handshake.capabilities().contains(CapabilityFlags::CLIENT_SSL) {
            return Err(WireError::NoTls);
        }
        let version = handshake.server_version_parsed().unwrap_or((0, 0, 0));
        conn.capabilities = handshake.capabilities()
            & (CapabilityFlags::CLIENT_PROTOCOL_41 | CapabilityFlags::CLIENT_SECURE_CONNECTION);
        let names = crate::tls::NamesSeen::default();
        let config = opts.tls.client_config_noting(Some(names.clone())).map_err(|e| WireError::Tls(e.0))?;
        conn.start_tls(opts, config, version).await?;
        let _ = conn.stream.shutdown().await;
        let seen = names.lock().map(|n| n.clone()).unwrap_or_default();
        Ok(seen.map(|names| names.iter().filter_map(|n| crate::tls::usable_name(n)).collect()))
    }

    async fn open(opts: &ConnectOptions) -> Result<Connection> {
        let stream = TcpStream::connect((opts.host.as_str(), opts.port)).await?;
        stream.set_nodelay(true)?;
        keepalive(&stream)?;
        Ok(Connection {
            stream: Stream::Plain(stream),
            read_timeout: opts.read_timeout,
            tls: None,
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            large: Vec::new(),
            seq: 0,
            capabilities: CapabilityFlags::empty(),
        })
    }

    async fn handshake(&mut self, opts: &ConnectOptions) -> Result<()> {
        let packet = self.read_owned().await?;
        if packet.first() == Some(&0xFF) {
            return Err(server_error(&packet, CapabilityFlags::empty()));
        }
        let handshake: HandshakePacket<'_> = parse(&packet, "the server greeting")?;
        let mut nonce = handshake.scramble_1_ref().to_vec();
        nonce.extend_from_slice(handshake.scramble_2_ref().unwrap_or_default());
        nonce.resize(20, 0);
        let version = handshake
            .maria_db_server_version_parsed()
            .or_else(|| handshake.server_version_parsed())
            .unwrap_or((0, 0, 0));
        let wanted = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_LONG_PASSWORD
            | CapabilityFlags::CLIENT_LONG_FLAG
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | CapabilityFlags::CLIENT_MULTI_RESULTS
            | CapabilityFlags::CLIENT_PS_MULTI_RESULTS
            | CapabilityFlags::CLIENT_DEPRECATE_EOF
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
        self.capabilities = handshake.capabilities() & wanted;
        if opts.database.is_some() {
            self.capabilities |= CapabilityFlags::CLIENT_CONNECT_WITH_DB;
        }
        let server_offers_tls = handshake.capabilities().contains(CapabilityFlags::CLIENT_SSL);
        match (opts.tls.mode, server_offers_tls) {
            (SslMode::Disabled, _) => {}
            (_, true) => {
                let config = opts.tls.client_config().map_err(|e| WireError::Tls(e.0))?;
                self.start_tls(opts, config, version).await?
            }
            (mode, false) if mode.requires_tls() => return Err(WireError::NoTls),
            // PREFERRED against a server without TLS: plaintext.
            (_, false) => {}
        }
        let mut plugin = match handshake.auth_plugin() {
            Some(AuthPlugin::CachingSha2Password) => AuthPlugin::CachingSha2Password,
            _ => AuthPlugin::MysqlNativePassword,
        };
        let auth_data = plugin.gen_data(Some(&opts.password), &nonce);
        let response = HandshakeResponse::new(
            auth_data.as_deref(),
            version,
            Some(opts.user.as_bytes()),
            opts.database.as_deref().map(str::as_bytes),
            Some(plugin.clone()),
            self.capabilities,
            None,
            MAX_PAYLOAD as u32,
        );
        let mut out = Vec::new();
        mysql_common::proto::MySerialize::serialize(&response, &mut out);
        self.write_payload(&out).await?;

        let mut switched = false;
        loop {
            let packet = self.read_owned().await?;
            match packet.first().copied() {
                Some(0x00) => return Ok(()),
                Some(0xFF) => return Err(server_error(&packet, self.capabilities)),
                Some(0xFE) if !switched => {
                    switched = true;
                    let request: AuthSwitchRequest<'_> = parse(&packet, "an authentication switch")?;
                    plugin = match request.auth_plugin() {
                        AuthPlugin::CachingSha2Password => AuthPlugin::CachingSha2Password,
                        AuthPlugin::MysqlNativePassword => AuthPlugin::MysqlNativePassword,
                        other => {
                            return Err(WireError::Protocol(format!(
                                "the server asks for authentication plugin '{}', which osiris does not support",
                                String::from_utf8_lossy(other.as_bytes())
                            )));
                        }
                    };
                    nonce = request.plugin_data().to_vec();
                    let data = plugin.gen_data(Some(&opts.password), &nonce);
                    self.write_payload(data.as_deref().unwrap_or_default()).await?;
                }
                // caching_sha2_password: 0x01 0x03 = the fast path succeeded (an OK follows),
                // 0x01 0x04 = the server wants the password itself.
                Some(0x01) if matches!(plugin, AuthPlugin::CachingSha2Password) => match packet.get(1) {
                    Some(0x03) => {}
                    Some(0x04) => match full_auth(&opts.password, self.tls.is_some()) {
                        FullAuth::Clear(password) => self.write_payload(&password).await?,
                        FullAuth::RequestPublicKey => self.send_password_rsa(&opts.password, &nonce).await?,
                    },
                    _ => return Err(unexpected(&packet, "caching_sha2_password authentication")),
                },
                _ => return Err(unexpected(&packet, "authentication")),
            }
        }
    }

    /// Asks for TLS (SSLRequest) and runs the TLS handshake; the login then continues encrypted.
    async fn start_tls(
        &mut self,
        opts: &ConnectOptions,
        config: Option<Arc<rustls::ClientConfig>>,
        version: (u16, u16, u16),
    ) -> Result<()> {
        let Some(config) = config else { return Ok(()) };
        let server_name = rustls::pki_types::ServerName::try_from(opts.host.clone())
            .map_err(|e| WireError::Tls(format!("'{}' cannot be checked against a certificate: {e}", opts.host)))?;
        self.capabilities |= CapabilityFlags::CLIENT_SSL;
        let collation = if version >= (5, 5, 3) { 45 } else { 33 }; // utf8mb4_general_ci / utf8_general_ci
        let request = SslRequest::new(self.capabilities, MAX_PAYLOAD as u32, collation);
        let mut out = Vec::new();
        mysql_common::proto::MySerialize::serialize(&request, &mut out);
        self.write_payload(&out).await?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            return Err(WireError::Protocol("TLS was started twice".into()));
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::<rustls::ClientConfig>::clone(&config));
        let handshake = tokio::time::timeout(self.read_timeout, connector.connect(server_name, tcp));
        let tls = handshake.await.map_err(|_| WireError::Timeout(self.read_timeout))?.map_err(tls_error)?;
        let (_, session) = tls.get_ref();
        self.tls = Some(TlsSession {
            version: session.protocol_version().and_then(|v| v.as_str()).unwrap_or("TLS").replace("TLSv1_", "TLSv1."),
            cipher: session.negotiated_cipher_suite().and_then(|c| c.suite().as_str()).unwrap_or("unknown").to_string(),
        });
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    /// The TLS session, or `None` for a plaintext connection.
    pub fn tls_session(&self) -> Option<&TlsSession> {
        self.tls.as_ref()
    }

    /// caching_sha2_password's full authentication without TLS: the password, XORed with the
    /// nonce, encrypted with the server's RSA public key.
    async fn send_password_rsa(&mut self, password: &str, nonce: &[u8]) -> Result<()> {
        self.write_payload(&[0x02]).await?;
        let key = self.read_owned().await?;
        if key.first() != Some(&0x01) {
            return Err(unexpected(&key, "the server's public key"));
        }
        let mut secret: Vec<u8> = password.bytes().chain(std::iter::once(0)).collect();
        for (i, byte) in secret.iter_mut().enumerate() {
            *byte ^= nonce[i % nonce.len()];
        }
        let encrypted = mysql_common::crypto::encrypt(&secret, &key[1..]);
        self.write_payload(&encrypted).await
    }

    /// Runs a query in the text protocol and returns its rows, each value as text (`None` for
    /// NULL). For small results (settings, status); the export streams through [`Self::execute`].
    pub async fn query_rows(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        self.command(COM_QUERY, sql.as_bytes()).await?;
        let first = self.read_owned().await?;
        match first.first().copied() {
            Some(0x00) => return Ok(Vec::new()),
            Some(0xFF) => return Err(server_error(&first, self.capabilities)),
            _ => {}
        }
        let columns = lenenc_int(&first, &mut 0).ok_or_else(|| unexpected(&first, "a query"))?;
        for _ in 0..columns {
            self.read_owned().await?;
        }
        if !self.deprecate_eof() {
            self.read_owned().await?;
        }
        let mut rows = Vec::new();
        while let Some(packet) = self.next_row().await? {
            let payload = self.payload(&packet);
            let mut pos = 0;
            let mut row = Vec::with_capacity(columns as usize);
            for _ in 0..columns {
                if payload.get(pos) == Some(&0xFB) {
                    pos += 1;
                    row.push(None);
                    continue;
                }
                let len = lenenc_int(payload, &mut pos).ok_or_else(|| unexpected(payload, "a text row"))? as usize;
                let end = pos.checked_add(len).ok_or_else(|| unexpected(payload, "a text row"))?;
                let value = payload.get(pos..end).ok_or_else(|| unexpected(payload, "a text row"))?;
                row.push(Some(String::from_utf8_lossy(value).into_owned()));
                pos = end;
            }
            rows.push(row);
        }
        Ok(rows)
    }

    /// Runs a statement whose result (if any) is discarded.
    pub async fn query_drop(&mut self, sql: &str) -> Result<()> {
        self.command(COM_QUERY, sql.as_bytes()).await?;
        let first = self.read_owned().await?;
        match first.first().copied() {
            Some(0x00) => Ok(()),
            Some(0xFF) => Err(server_error(&first, self.capabilities)),
            _ => {
                // A result set: skip its column definitions and rows.
                let columns = lenenc_int(&first, &mut 0).ok_or_else(|| unexpected(&first, "a query"))?;
                for _ in 0..columns {
                    self.read_owned().await?;
                }
                if !self.deprecate_eof() {
                    self.read_owned().await?;
                }
                while self.next_row().await?.is_some() {}
                Ok(())
            }
        }
    }

    /// Prepares `sql` and executes it without parameters; returns the result set's columns
    /// (empty for a statement without a result set). Rows follow through [`Self::next_row`].
    pub async fn execute(&mut self, sql: &str) -> Result<Vec<Column>> {
        self.command(COM_STMT_PREPARE, sql.as_bytes()).await?;
        let first = self.read_owned().await?;
        if first.first() == Some(&0xFF) {
            return Err(server_error(&first, self.capabilities));
        }
        let stmt: StmtPacket = parse(&first, "a prepared statement")?;
        if stmt.num_params() > 0 {
            return Err(WireError::Protocol(format!(
                "the query has {} `?` placeholder(s), but osiris sends no parameters",
                stmt.num_params()
            )));
        }
        for _ in 0..stmt.num_columns() {
            self.read_owned().await?;
        }
        if stmt.num_columns() > 0 && !self.deprecate_eof() {
            self.read_owned().await?;
        }

        let mut request = vec![COM_STMT_EXECUTE];
        request.extend_from_slice(&stmt.statement_id().to_le_bytes());
        request.push(0); // CURSOR_TYPE_NO_CURSOR: the server streams every row
        request.extend_from_slice(&1u32.to_le_bytes());
        self.seq = 0;
        self.write_payload(&request).await?;
        let first = self.read_owned().await?;
        match first.first().copied() {
            Some(0xFF) => return Err(server_error(&first, self.capabilities)),
            Some(0x00) => return Ok(Vec::new()),
            _ => {}
        }
        let count = lenenc_int(&first, &mut 0).ok_or_else(|| unexpected(&first, "a result set"))?;
        let mut columns = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let packet = self.read_owned().await?;
            columns.push(parse::<Column>(&packet, "a column definition")?);
        }
        if !self.deprecate_eof() {
            self.read_owned().await?;
        }
        Ok(columns)
    }

    /// The next binary-protocol row of the current result set, or `None` at its end. The row is
    /// [`Self::payload`] of the returned packet.
    pub async fn next_row(&mut self) -> Result<Option<Packet>> {
        let packet = self.read_packet().await?;
        self.classify(packet)
    }

    /// The next row if the read buffer already holds all of it: the hot path, with no await.
    #[inline]
    pub fn buffered_row(&mut self) -> Result<Buffered> {
        match self.try_frame() {
            Frame::Packet(p) => Ok(match self.classify(p)? {
                Some(p) => Buffered::Row(p),
                None => Buffered::End,
            }),
            Frame::NeedData(_) => Ok(Buffered::NeedData),
            Frame::Split => Ok(Buffered::Split),
        }
    }

    /// Reads from the socket once (after [`Buffered::NeedData`]); does nothing when the next
    /// packet is already complete.
    pub async fn read_more(&mut self) -> Result<()> {
        let available = self.end - self.start;
        let needed = if available < 4 { 4 } else { 4 + header_len(&self.buf[self.start..]) };
        if available >= needed || needed == 4 + MAX_PAYLOAD {
            return Ok(());
        }
        self.fill(needed).await
    }

    /// Reads a row split over several packets (after [`Buffered::Split`]).
    pub async fn read_split_row(&mut self) -> Result<Option<Packet>> {
        let packet = self.read_split_packet().await?;
        self.classify(packet)
    }

    #[inline]
    fn classify(&self, packet: Packet) -> Result<Option<Packet>> {
        let payload = self.payload(&packet);
        match payload.first().copied() {
            Some(0xFE) if payload.len() < MAX_PAYLOAD => Ok(None),
            Some(0xFF) => Err(server_error(payload, self.capabilities)),
            Some(_) => Ok(Some(packet)),
            None => Err(WireError::Protocol("an empty row packet".into())),
        }
    }

    /// The payload of a packet returned by [`Self::next_row`], valid until the next read.
    #[inline]
    pub fn payload(&self, packet: &Packet) -> &[u8] {
        match packet {
            Packet::Buffered(r) => &self.buf[r.clone()],
            Packet::Assembled => &self.large,
        }
    }

    /// Says goodbye (best effort: the connection is closed either way).
    pub async fn quit(mut self) {
        if self.command(COM_QUIT, &[]).await.is_ok() {
            let _ = self.stream.shutdown().await;
        }
    }

    fn deprecate_eof(&self) -> bool {
        self.capabilities.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF)
    }

    async fn command(&mut self, command: u8, body: &[u8]) -> Result<()> {
        self.seq = 0;
        let mut payload = Vec::with_capacity(1 + body.len());
        payload.push(command);
        payload.extend_from_slice(body);
        self.write_payload(&payload).await
    }

    /// Writes one payload as as many packets as it takes (a payload of an exact multiple of the
    /// maximum size ends with an empty packet).
    async fn write_payload(&mut self, payload: &[u8]) -> Result<()> {
        let mut out = Vec::with_capacity(payload.len() + 8);
        let mut rest = payload;
        loop {
            let n = rest.len().min(MAX_PAYLOAD);
            push_header(&mut out, n, &mut self.seq);
            out.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if n < MAX_PAYLOAD {
                break;
            }
        }
        match tokio::time::timeout(self.read_timeout, self.stream.write_all(&out)).await {
            Err(_) => Err(WireError::Timeout(self.read_timeout)),
            Ok(written) => Ok(written?),
        }
    }

    /// Reads one packet and copies its payload out (for the few packets outside row streaming).
    async fn read_owned(&mut self) -> Result<Vec<u8>> {
        let packet = self.read_packet().await?;
        Ok(self.payload(&packet).to_vec())
    }

    /// Reads one whole packet, reading from the socket only when the buffer holds none.
    async fn read_packet(&mut self) -> Result<Packet> {
        loop {
            match self.try_frame() {
                Frame::Packet(p) => return Ok(p),
                Frame::Split => return self.read_split_packet().await,
                Frame::NeedData(n) => self.fill(n).await?,
            }
        }
    }

    /// Takes the next packet out of the read buffer if it is all there.
    #[inline]
    fn try_frame(&mut self) -> Frame {
        let available = self.end - self.start;
        if available < 4 {
            return Frame::NeedData(4);
        }
        let len = header_len(&self.buf[self.start..]);
        if len == MAX_PAYLOAD {
            return Frame::Split;
        }
        if available < 4 + len {
            return Frame::NeedData(4 + len);
        }
        self.seq = self.buf[self.start + 3].wrapping_add(1);
        let payload = self.start + 4..self.start + 4 + len;
        self.start = payload.end;
        Frame::Packet(Packet::Buffered(payload))
    }

    /// Assembles a payload split over several maximal packets.
    async fn read_split_packet(&mut self) -> Result<Packet> {
        self.large.clear();
        loop {
            while self.end - self.start < 4 {
                self.fill(4).await?;
            }
            let len = header_len(&self.buf[self.start..]);
            while self.end - self.start < 4 + len {
                self.fill(4 + len).await?;
            }
            self.seq = self.buf[self.start + 3].wrapping_add(1);
            self.large.extend_from_slice(&self.buf[self.start + 4..self.start + 4 + len]);
            self.start += 4 + len;
            if len < MAX_PAYLOAD {
                return Ok(Packet::Assembled);
            }
        }
    }

    /// Reads more bytes so that at least `needed` unconsumed bytes can fit, moving the
    /// unconsumed tail to the front of the buffer first.
    async fn fill(&mut self, needed: usize) -> Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < needed {
            self.buf.resize(needed.next_power_of_two(), 0);
        }
        let read = tokio::time::timeout(self.read_timeout, self.stream.read(&mut self.buf[self.end..]));
        let n = read.await.map_err(|_| WireError::Timeout(self.read_timeout))??;
        if n == 0 {
            return Err(WireError::Closed);
        }
        self.end += n;
        Ok(())
    }
}

/// A failed TLS handshake, with the certificate problem in words when there is one.
fn tls_error(e: io::Error) -> WireError {
    let detail = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(|r| r.to_string())
        .unwrap_or_else(|| e.to_string());
    WireError::Tls(detail)
}

/// The payload length in a packet header (the first three bytes of `header`).
#[inline]
fn header_len(header: &[u8]) -> usize {
    usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16
}

fn push_header(out: &mut Vec<u8>, len: usize, seq: &mut u8) {
    out.extend_from_slice(&(len as u32).to_le_bytes()[..3]);
    out.push(*seq);
    *seq = seq.wrapping_add(1);
}

fn parse<'a, T: MyDeserialize<'a, Ctx = ()>>(payload: &'a [u8], what: &str) -> Result<T> {
    ParseBuf(payload).parse(()).map_err(|e| WireError::Protocol(format!("cannot read {what}: {e}")))
}

fn unexpected(payload: &[u8], during: &str) -> WireError {
    let shown = &payload[..payload.len().min(16)];
    WireError::Protocol(format!("unexpected packet during {during} (starts with {shown:02x?})"))
}

fn server_error(payload: &[u8], capabilities: CapabilityFlags) -> WireError {
    let parsed = ParseBuf(payload).parse::<mysql_common::packets::ErrPacket<'_>>(capabilities);
    match parsed {
        Ok(mysql_common::packets::ErrPacket::Error(e)) => WireError::Server {
            code: e.error_code(),
            state: e.sql_state_ref().map(|s| s.as_str().into_owned()).unwrap_or_else(|| "HY000".into()),
            message: e.message_str().into_owned(),
        },
        _ => unexpected(payload, "an error report"),
    }
}

/// Reads a length-encoded integer at `*pos`.
#[inline]
pub fn lenenc_int(data: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *data.get(*pos)?;
    let (value, width) = match first {
        0..=0xFA => (u64::from(first), 0),
        0xFC => (u64::from(u16::from_le_bytes(data.get(*pos + 1..*pos + 3)?.try_into().ok()?)), 2),
        0xFD => {
            let b = data.get(*pos + 1..*pos + 4)?;
            (u64::from(b[0]) | u64::from(b[1]) << 8 | u64::from(b[2]) << 16, 3)
        }
        0xFE => (u64::from_le_bytes(data.get(*pos + 1..*pos + 9)?.try_into().ok()?), 8),
        _ => return None,
    };
    *pos += 1 + width;
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caching_sha2_full_authentication_sends_the_password_in_clear_only_over_tls() {
        assert_eq!(full_auth("pä$$", true), FullAuth::Clear(b"p\xc3\xa4$$\0".to_vec()));
        assert_eq!(full_auth("", true), FullAuth::Clear(vec![0]));
        assert_eq!(full_auth("secret", false), FullAuth::RequestPublicKey);
    }
}
