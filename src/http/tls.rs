//! HTTPS in: `[server.tls]` PEM files turned into a rustls server config (aws-lc-rs, ALPN
//! `http/1.1`) and a monoio-rustls [`TlsAcceptor`].
//!
//! Loading happens once at start-up, so every failure is an error that names the file and
//! what is wrong with it; nothing here runs per connection.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use monoio_rustls::TlsAcceptor;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

use crate::config::TlsConfig;

/// Why the TLS files could not be turned into a server config.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read TLS file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The certificate file is not valid PEM.
    #[error("TLS certificate file {} is not valid PEM", path.display())]
    InvalidCertificate {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        #[source]
        source: io::Error,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("TLS certificate file {} holds no PEM certificate", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file is not valid PEM.
    #[error("TLS key file {} is not valid PEM", path.display())]
    InvalidKey {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        #[source]
        source: io::Error,
    },
    /// The key file holds no private key.
    #[error(
        "TLS key file {} holds no private key (expected a PKCS#8, PKCS#1 or SEC1 PEM block)",
        path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the pair (for example, the key does not match the certificate).
    #[error("TLS certificate {} and key {} are not usable together", cert.display(), key.display())]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
}

/// Makes aws-lc-rs the process's rustls crypto provider. Idempotent; the first call wins.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The rustls server config for `tls`: its certificate chain and key, ALPN `http/1.1`.
pub fn server_config(tls: &TlsConfig) -> Result<rustls::ServerConfig, TlsError> {
    install_crypto_provider();
    let certs = load_certs(&tls.cert)?;
    let key = load_key(&tls.key)?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::Rejected {
            cert: tls.cert.clone(),
            key: tls.key.clone(),
            source,
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The acceptor `run_listener` takes, built from `[server.tls]`.
pub fn acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    Ok(TlsAcceptor::from(Arc::new(server_config(tls)?)))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::InvalidCertificate {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| TlsError::InvalidKey {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey {
            path: path.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, contents).expect("write");
        path
    }

    fn self_signed() -> (String, String) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
        (cert.cert.pem(), cert.key_pair.serialize_pem())
    }

    #[test]
    fn a_valid_pair_gives_an_acceptor_with_http11_alpn() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = self_signed();
        let tls = TlsConfig {
            cert: write(dir.path(), "cert.pem", &cert),
            key: write(dir.path(), "key.pem", &key),
        };
        let config = server_config(&tls).expect("valid");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        acceptor(&tls).expect("acceptor");
    }

    #[test]
    fn every_failure_names_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = self_signed();
        let (other_cert, _) = self_signed();
        let good_cert = write(dir.path(), "cert.pem", &cert);
        let good_key = write(dir.path(), "key.pem", &key);
        let empty = write(dir.path(), "empty.pem", "");
        let missing = dir.path().join("missing.pem");
        let other = write(dir.path(), "other.pem", &other_cert);
        let broken = write(
            dir.path(),
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        );

        type Case<'a> = (PathBuf, PathBuf, fn(&TlsError) -> bool, &'a Path);
        let cases: Vec<Case<'_>> = vec![
            (
                missing.clone(),
                good_key.clone(),
                |e| matches!(e, TlsError::Read { .. }),
                &missing,
            ),
            (
                good_cert.clone(),
                missing.clone(),
                |e| matches!(e, TlsError::Read { .. }),
                &missing,
            ),
            (
                empty.clone(),
                good_key.clone(),
                |e| matches!(e, TlsError::NoCertificate { .. }),
                &empty,
            ),
            (
                broken.clone(),
                good_key.clone(),
                |e| matches!(e, TlsError::InvalidCertificate { .. }),
                &broken,
            ),
            (
                good_cert.clone(),
                empty.clone(),
                |e| matches!(e, TlsError::NoKey { .. }),
                &empty,
            ),
            (
                good_cert.clone(),
                good_cert.clone(),
                |e| matches!(e, TlsError::NoKey { .. }),
                &good_cert,
            ),
            (
                other.clone(),
                good_key.clone(),
                |e| matches!(e, TlsError::Rejected { .. }),
                &other,
            ),
        ];
        for (cert, key, expected, named) in cases {
            let tls = TlsConfig { cert, key };
            let err = server_config(&tls).expect_err("must fail");
            assert!(expected(&err), "{tls:?}: {err:?}");
            let message = err.to_string();
            assert!(message.contains(&named.display().to_string()), "{message}");
        }
    }
}
