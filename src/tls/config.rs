//! The server's TLS configuration, loaded from PEM files at start-up.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// A certificate or key that cannot serve TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The certificate file could not be read or holds no PEM certificate.
    #[error("cannot load the certificate chain from {path}: {problem}")]
    Certificate {
        /// The `--tls-cert` file.
        path: String,
        /// What went wrong.
        problem: String,
    },
    /// The key file could not be read or holds no PEM private key.
    #[error("cannot load the private key from {path}: {problem}")]
    Key {
        /// The `--tls-key` file.
        path: String,
        /// What went wrong.
        problem: String,
    },
    /// rustls refused the pair (a key that does not match the certificate, an unsupported
    /// key type).
    #[error("the certificate and key cannot be used together: {0}")]
    Pair(rustls::Error),
}

/// A server configuration serving the certificate chain in `cert_path` (PEM, leaf first) with
/// the private key in `key_path` (PEM: PKCS#8, PKCS#1 or SEC1). TLS 1.3 and 1.2 with rustls'
/// safe defaults and the `ring` provider; ALPN offers `http/1.1` (the upgrade needs it);
/// no session tickets and no early data (each connection's handshake is complete, and no
/// ticket key is shared between cores).
pub fn server_config(cert_path: &str, key_path: &str) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let certificate = |problem: String| TlsConfigError::Certificate {
        path: cert_path.to_owned(),
        problem,
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| certificate(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| certificate(e.to_string()))?;
    if certs.is_empty() {
        return Err(certificate("no CERTIFICATE block in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsConfigError::Key {
        path: key_path.to_owned(),
        problem: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Pair)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsConfigError::Pair)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/server.pem");
    const KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/server.key");
    const CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/ca.pem");

    #[test]
    fn the_fixture_pair_loads() {
        let config = server_config(CERT, KEY).unwrap();
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    }

    #[test]
    fn unusable_files_name_the_file_and_the_problem() {
        let missing = server_config("/nonexistent/cert.pem", KEY).unwrap_err().to_string();
        assert!(missing.contains("/nonexistent/cert.pem"), "{missing}");
        let no_key = server_config(CERT, CERT).unwrap_err().to_string();
        assert!(
            no_key.contains("private key") && no_key.contains("server.pem"),
            "{no_key}"
        );
        let empty = server_config(KEY, KEY).unwrap_err().to_string();
        assert!(empty.contains("no CERTIFICATE"), "{empty}");
        // The CA's certificate with the leaf's key: rustls finds they do not match.
        let mismatch = server_config(CA, KEY).unwrap_err();
        assert!(matches!(mismatch, TlsConfigError::Pair(_)), "{mismatch}");
    }
}
