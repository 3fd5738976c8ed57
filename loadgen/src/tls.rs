//! TLS client settings for `wss://`: rustls with the ring provider, trust from `--tls-ca` or
//! no verification at all (`--tls-insecure`), and the names failures are reported under.
//!
//! Every connection makes a full handshake: session resumption is off, so handshake figures
//! are full-handshake costs and cores share no session cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How server certificates are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Against the PEM trust anchors in this file.
    CaFile(PathBuf),
    /// Not at all (self-signed benchmarking targets).
    Insecure,
}

/// What every TLS connection of a run is opened with.
#[derive(Debug, Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl TlsClient {
    /// Settings for connections to `host` (the URL host: the SNI name and the name the
    /// certificate must be valid for; an IP address is checked against the IP SANs).
    pub fn new(host: &str, trust: &Trust) -> Result<TlsClient, String> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(bare.to_string())
            .map_err(|e| format!("{bare} is not a valid TLS server name: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS settings: {e}"))?;
        let mut config = match trust {
            Trust::CaFile(path) => builder.with_root_certificates(roots(path)?),
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider))),
        }
        .with_no_client_auth();
        config.resumption = Resumption::disabled();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsClient {
            config: Arc::new(config),
            server_name,
        })
    }

    /// A new client connection, in its handshake, with no limit on buffered output (the
    /// writer batches a bounded amount at a time).
    pub fn connection(&self) -> Result<ClientConnection, String> {
        let mut conn = ClientConnection::new(self.config.clone(), self.server_name.clone()).map_err(|e| reason(&e))?;
        conn.set_buffer_limit(None);
        Ok(conn)
    }
}

/// The trust anchors in the PEM file at `path`.
fn roots(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let mut roots = RootCertStore::empty();
    let unreadable = |e| format!("--tls-ca {shown}: cannot read PEM certificates: {e}");
    for cert in CertificateDer::pem_file_iter(path).map_err(unreadable)? {
        let cert = cert.map_err(unreadable)?;
        roots
            .add(cert)
            .map_err(|e| format!("--tls-ca {shown}: not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("--tls-ca {shown}: no PEM certificate in the file"));
    }
    Ok(roots)
}

/// The reason a TLS failure is counted under: `tls_` and the error's variant names in snake
/// case, e.g. `tls_invalid_certificate_unknown_issuer`, `tls_alert_received_handshake_failure`.
pub fn reason(err: &rustls::Error) -> String {
    let debug = format!("{err:?}");
    let mut out = String::from("tls");
    let mut word_start = true;
    for c in debug.chars().take_while(|c| !matches!(c, '{' | '[' | '"' | ',')) {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() || word_start {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            word_start = false;
        } else {
            word_start = true;
        }
    }
    out
}

/// The reason for an I/O error that carries a TLS failure, if it does.
pub fn reason_in(err: &std::io::Error) -> Option<String> {
    Some(reason(err.get_ref()?.downcast_ref::<rustls::Error>()?))
}

/// Accepts any certificate, yet still checks the handshake signatures (the server holds the
/// key of the certificate it sent).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
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
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{AlertDescription, CertificateError};

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/tls")
            .join(name)
    }

    #[test]
    fn names_failures_in_snake_case() {
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(reason(&unknown), "tls_invalid_certificate_unknown_issuer");
        let alert = rustls::Error::AlertReceived(AlertDescription::HandshakeFailure);
        assert_eq!(reason(&alert), "tls_alert_received_handshake_failure");
        assert_eq!(reason(&rustls::Error::General("x".into())), "tls_general");
    }

    /// Runs a handshake in memory between a client for `host` and a server with the test
    /// certificate; returns the server's view of SNI, or the client's failure.
    fn handshake(host: &str, trust: Trust) -> Result<Option<String>, String> {
        use rustls::pki_types::PrivateKeyDer;
        let certs = CertificateDer::pem_file_iter(fixture("server.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(fixture("server.key")).unwrap();
        let server_config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap();
        let mut server = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
        let mut client = TlsClient::new(host, &trust)?.connection()?;
        let mut wire = Vec::new();
        while client.is_handshaking() || server.is_handshaking() {
            wire.clear();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            server.read_tls(&mut &wire[..]).unwrap();
            let server_failed = server.process_new_packets().is_err();
            wire.clear();
            while server.wants_write() {
                server.write_tls(&mut wire).unwrap();
            }
            client.read_tls(&mut &wire[..]).unwrap();
            client.process_new_packets().map_err(|e| reason(&e))?;
            assert!(!server_failed, "the server failed first");
        }
        Ok(server.server_name().map(str::to_string))
    }

    #[test]
    fn checks_the_certificate_for_the_url_host_and_sends_it_as_sni() {
        let ca = || Trust::CaFile(fixture("ca.pem"));
        assert_eq!(handshake("localhost", ca()), Ok(Some("localhost".into())));
        // An IP address is checked against the IP SANs and sent as no SNI (RFC 6066).
        assert_eq!(handshake("127.0.0.1", ca()), Ok(None));
        assert_eq!(
            handshake("example.com", ca()),
            Err("tls_invalid_certificate_not_valid_for_name_context".into())
        );
        assert_eq!(
            handshake("example.com", Trust::Insecure),
            Ok(Some("example.com".into()))
        );
        assert_eq!(
            handshake("localhost", Trust::CaFile(fixture("server.pem"))),
            Err("tls_invalid_certificate_unknown_issuer".into())
        );
    }

    #[test]
    fn loads_a_ca_file_and_says_what_is_wrong_with_a_bad_one() {
        assert!(TlsClient::new("localhost", &Trust::CaFile(fixture("ca.pem"))).is_ok());
        assert!(TlsClient::new("[::1]", &Trust::Insecure).is_ok());
        let missing = fixture("nope.pem");
        let err = TlsClient::new("localhost", &Trust::CaFile(missing.clone())).unwrap_err();
        assert!(err.starts_with(&format!("--tls-ca {}", missing.display())), "{err}");
        let key = TlsClient::new("localhost", &Trust::CaFile(fixture("server.key"))).unwrap_err();
        assert!(key.contains("no PEM certificate"), "{key}");
    }
}
