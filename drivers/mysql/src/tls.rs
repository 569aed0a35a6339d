//! TLS to MySQL/MariaDB: the `ssl_mode` of a connection and what it means for each client (the
//! extractor's lean client gets a rustls `ClientConfig`, the writer's mysql_async `SslOpts`).
//! rustls with the ring provider only; no OpenSSL, no aws-lc.
//!
//! The modes are MySQL's own (`mysql --ssl-mode`):
//! - `DISABLED`: plaintext.
//! - `PREFERRED` (the default): TLS when the server offers it, else plaintext; the certificate is
//!   not checked (like the MySQL clients: it protects against eavesdropping, not impersonation).
//! - `REQUIRED`: TLS or fail; the certificate is not checked.
//! - `VERIFY_CA`: TLS, and the certificate chain must lead to `ssl_ca` (or a public root).
//! - `VERIFY_IDENTITY`: as `VERIFY_CA`, and the certificate must name the host connected to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// `ssl_mode` of a MySQL connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disabled,
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

/// The spellings `ssl_mode` accepts, for messages.
pub const SSL_MODES: &str = "DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY";

impl SslMode {
    /// Parses MySQL's names in any case, with `-` for `_`; PostgreSQL's `disable`, `prefer`,
    /// `require`, `verify-full` are accepted too (people carry `sslmode` over from there).
    pub fn parse(text: &str) -> Option<SslMode> {
        let normalised = text.trim().to_ascii_uppercase().replace('-', "_");
        Some(match normalised.as_str() {
            "DISABLED" | "DISABLE" => SslMode::Disabled,
            "PREFERRED" | "PREFER" => SslMode::Preferred,
            "REQUIRED" | "REQUIRE" => SslMode::Required,
            "VERIFY_CA" => SslMode::VerifyCa,
            "VERIFY_IDENTITY" | "VERIFY_FULL" => SslMode::VerifyIdentity,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disabled => "DISABLED",
            SslMode::Preferred => "PREFERRED",
            SslMode::Required => "REQUIRED",
            SslMode::VerifyCa => "VERIFY_CA",
            SslMode::VerifyIdentity => "VERIFY_IDENTITY",
        }
    }

    /// Whether a server without TLS is an error.
    pub fn requires_tls(self) -> bool {
        !matches!(self, SslMode::Disabled | SslMode::Preferred)
    }

    fn verifies_chain(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyIdentity)
    }
}

/// The TLS settings of one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    pub mode: SslMode,
    /// PEM file of the CA certificate(s) to trust instead of the public roots.
    pub ca: Option<PathBuf>,
    /// PEM files of a client certificate (chain) and its private key, for servers that ask for one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions { mode: SslMode::Preferred, ca: None, client_cert: None }
    }
}

/// Why a TLS configuration cannot be built (a file is missing or unusable).
#[derive(Debug)]
pub struct TlsSetupError(pub String);

impl std::fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsSetupError {}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsOptions {
    /// The rustls configuration of the lean client (`None` for `DISABLED`).
    pub fn client_config(&self) -> Result<Option<Arc<ClientConfig>>, TlsSetupError> {
        self.client_config_noting(None)
    }

    /// As [`Self::client_config`]; with `VERIFY_CA`, the names a certificate presents that does not
    /// name the host go to `names`.
    pub fn client_config_noting(&self, names: Option<NamesSeen>) -> Result<Option<Arc<ClientConfig>>, TlsSetupError> {
        if self.mode == SslMode::Disabled {
            return Ok(None);
        }
        let provider = provider();
        let roots = Arc::new(self.root_store()?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| TlsSetupError(format!("cannot use the CA certificates: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.mode {
            SslMode::VerifyIdentity => webpki,
            SslMode::VerifyCa => Arc::new(ChainOnly { webpki, names }),
            _ => Arc::new(EncryptOnly(provider.clone())),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError(format!("cannot set up TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let (chain, key) = load_identity(cert, key)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsSetupError(format!("cannot use the client certificate {}: {e}", cert.display())))?
            }
        };
        Ok(Some(Arc::new(config)))
    }

    /// mysql_async's options for the writer (`None` for `DISABLED`). mysql_async then insists on
    /// TLS; `PREFERRED` falls back to plaintext by connecting again (see `write.rs`).
    pub fn mysql_async_opts(&self, verify_ca_name: Option<String>) -> Option<mysql_async::SslOpts> {
        if self.mode == SslMode::Disabled {
            return None;
        }
        let mut opts = mysql_async::SslOpts::default()
            .with_danger_accept_invalid_certs(!self.mode.verifies_chain())
            .with_disable_built_in_roots(self.ca.is_some());
        if let Some(ca) = &self.ca {
            opts = opts.with_root_certs(vec![ca.clone().into()]);
        }
        if let Some((cert, key)) = &self.client_cert {
            opts = opts
                .with_client_identity(Some(mysql_async::ClientIdentity::new(cert.clone().into(), key.clone().into())));
        }
        // VERIFY_CA: mysql_async's own "skip the name check" does not recognise rustls 0.23's
        // name errors, so the name the certificate presents is checked instead (found by the
        // lean client's probe), which amounts to checking the chain only.
        if let Some(name) = verify_ca_name {
            opts = opts.with_danger_tls_hostname_override(Some(name));
        }
        Some(opts)
    }

    fn root_store(&self) -> Result<RootCertStore, TlsSetupError> {
        let mut store = RootCertStore::empty();
        match &self.ca {
            None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Some(path) => {
                for cert in load_certs(path, "ssl_ca")? {
                    store.add(cert).map_err(|e| {
                        TlsSetupError(format!("ssl_ca {}: not a usable CA certificate: {e}", path.display()))
                    })?;
                }
            }
        }
        Ok(store)
    }
}

fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    std::fs::metadata(path).map_err(|e| TlsSetupError(format!("{what} {}: cannot read it: {e}", path.display())))?;
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsSetupError(format!("{what} {}: not a PEM certificate file: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsSetupError(format!("{what} {}: holds no PEM certificate", path.display())));
    }
    Ok(certs)
}

fn load_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsSetupError> {
    let chain = load_certs(cert, "ssl_cert")?;
    std::fs::metadata(key).map_err(|e| TlsSetupError(format!("ssl_key {}: cannot read it: {e}", key.display())))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsSetupError(format!("ssl_key {}: not a PEM private key: {e}", key.display())))?;
    Ok((chain, key))
}

/// `PREFERRED` / `REQUIRED`: any certificate, but the handshake signatures are still checked
/// (the session is encrypted with whoever holds the certificate's key).
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Where [`TlsOptions::client_config_noting`] puts the names of a certificate.
pub type NamesSeen = Arc<std::sync::Mutex<Option<Vec<String>>>>;

/// `VERIFY_CA`: the chain must lead to a trusted root; the names in the certificate do not matter.
#[derive(Debug)]
struct ChainOnly {
    webpki: Arc<WebPkiServerVerifier>,
    names: Option<NamesSeen>,
}

impl ChainOnly {
    /// The certificate does not name the host: `Some` of the names it presents (none, when it has
    /// no subjectAltName to read).
    fn note_mismatch(&self, presented: Vec<String>) {
        if let Some(names) = &self.names
            && let Ok(mut names) = names.lock()
        {
            names.get_or_insert_with(Vec::new).extend(presented);
        }
    }
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { presented, .. })) => {
                self.note_mismatch(presented);
                Ok(ServerCertVerified::assertion())
            }
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName)) => {
                self.note_mismatch(Vec::new());
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A name as webpki lists a certificate's names (`DnsName("db.example.com")`, `IpAddress(10.0.0.1)`)
/// turned into a host name that the certificate holds (a wildcard `*.example.com` gives
/// `x.example.com`).
pub fn usable_name(presented: &str) -> Option<String> {
    let name = if let Some(dns) = presented.strip_prefix("DnsName(\"").and_then(|r| r.strip_suffix("\")")) {
        dns.replacen("*.", "x.", 1)
    } else {
        presented.strip_prefix("IpAddress(").and_then(|r| r.strip_suffix(')'))?.to_string()
    };
    ServerName::try_from(name.as_str()).is_ok().then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_names_become_host_names() {
        assert_eq!(usable_name("DnsName(\"localhost\")").as_deref(), Some("localhost"));
        assert_eq!(usable_name("DnsName(\"*.db.example\")").as_deref(), Some("x.db.example"));
        assert_eq!(usable_name("IpAddress(10.0.0.1)").as_deref(), Some("10.0.0.1"));
        assert_eq!(usable_name("DirectoryName"), None);
    }

    #[test]
    fn ssl_modes_parse_in_mysql_and_postgres_spellings() {
        assert_eq!(SslMode::parse("required"), Some(SslMode::Required));
        assert_eq!(SslMode::parse("VERIFY-CA"), Some(SslMode::VerifyCa));
        assert_eq!(SslMode::parse(" verify_identity "), Some(SslMode::VerifyIdentity));
        assert_eq!(SslMode::parse("verify-full"), Some(SslMode::VerifyIdentity));
        assert_eq!(SslMode::parse("disable"), Some(SslMode::Disabled));
        assert_eq!(SslMode::parse("prefer"), Some(SslMode::Preferred));
        assert_eq!(SslMode::parse("on"), None);
        assert!(SslMode::Required.requires_tls() && !SslMode::Preferred.requires_tls());
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let opts = TlsOptions { mode: SslMode::VerifyCa, ca: Some("/nonexistent/ca.pem".into()), client_cert: None };
        let err = opts.client_config().err().map(|e| e.0).unwrap_or_default();
        assert!(err.contains("ssl_ca /nonexistent/ca.pem: cannot read it"), "{err}");
        assert!(TlsOptions { mode: SslMode::Disabled, ..opts }.client_config().unwrap().is_none());
    }

    #[test]
    fn encryption_only_modes_build_without_any_file() {
        assert!(TlsOptions::default().client_config().unwrap().is_some());
        assert!(
            TlsOptions { mode: SslMode::VerifyIdentity, ..TlsOptions::default() }.client_config().unwrap().is_some()
        );
    }
}
