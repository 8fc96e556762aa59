//! The files a config names, loaded as `serve` uses them: the `[server.tls]` certificate and
//! key (a rustls acceptor) and `delivery.ca_file` (the delivery client's trust roots).
//!
//! `hookd check-config` and `hookd serve` both call [`prepare`], so a config that
//! `check-config` calls `ok` is one whose files `serve` can use. Each problem is reported
//! under the key that names the file, like the problems of the file's own text, so that both
//! commands print them the same way and exit 2.
//!
//! [`warnings`] (the config's own) are what a config may say but surely does not mean (an ingest token's `apps`
//! entry that can name no app); both commands, and a reload, print them and go on.

pub use crate::config::warnings;
use crate::config::{Config, ConfigError, ConfigErrors, TlsConfig};
use crate::deliver::client::{ClientConfig, ClientError};
use crate::http::tls::{self, TlsAcceptor, TlsError};

/// What the config's files became: ready for the shards.
pub struct Prepared {
    /// The HTTPS acceptor, with `[server.tls]`.
    pub tls: Option<TlsAcceptor>,
    /// The delivery client's settings, its TLS roots read from `delivery.ca_file`.
    pub client: ClientConfig,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("tls", &self.tls.is_some())
            .field("client", &self.client)
            .finish()
    }
}

/// Loads every file `config` names. On failure, every problem, each under its key.
pub fn prepare(config: &Config) -> Result<Prepared, ConfigErrors> {
    let mut errors = Vec::new();
    let tls = match &config.server.tls {
        Some(t) => tls::acceptor(t)
            .map_err(|e| errors.push(tls_problem(t, &e)))
            .ok(),
        None => None,
    };
    let client = ClientConfig::from_config(&config.delivery)
        .map_err(|e| errors.push(ca_problem(&e)))
        .ok();
    match client {
        Some(client) if errors.is_empty() => Ok(Prepared { tls, client }),
        _ => Err(ConfigErrors { errors }),
    }
}

/// A TLS file's problem under the key naming that file (`server.tls` when it is the pair).
fn tls_problem(t: &TlsConfig, e: &TlsError) -> ConfigError {
    let file = match e {
        TlsError::Read { path, .. }
        | TlsError::InvalidCertificate { path, .. }
        | TlsError::NoCertificate { path }
        | TlsError::InvalidKey { path, .. }
        | TlsError::NoKey { path } => Some(path),
        TlsError::Rejected { .. } => None,
    };
    let key = match file {
        Some(p) if *p == t.cert => "server.tls.cert",
        Some(_) => "server.tls.key",
        None => "server.tls",
    };
    ConfigError {
        path: key.to_owned(),
        message: with_sources(e),
    }
}

fn ca_problem(e: &ClientError) -> ConfigError {
    let message = match e {
        // The sentence names the file and what is wrong; "TLS failed" is for attempts.
        ClientError::Tls(why) => why.clone(),
        other => other.to_string(),
    };
    ConfigError {
        path: "delivery.ca_file".to_owned(),
        message,
    }
}

/// `e` and each of its sources, joined by ": ", each said once.
pub fn with_sources(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !out.ends_with(&next) {
            out.push_str(": ");
            out.push_str(&next);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn every_missing_file_is_one_problem_under_its_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = |name: &str| dir.path().join(name);
        let mut config = Config::default();
        config.server.tls = Some(TlsConfig {
            cert: missing("cert.pem"),
            key: missing("key.pem"),
        });
        config.delivery.ca_file = Some(missing("ca.pem"));
        let errors = prepare(&config).expect_err("missing files").errors;
        let keys: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(keys, ["server.tls.cert", "delivery.ca_file"]);
        for (e, file) in errors.iter().zip(["cert.pem", "ca.pem"]) {
            let path: PathBuf = missing(file);
            assert!(e.message.contains(&path.display().to_string()), "{e}");
            assert_eq!(e.message.matches("No such file").count(), 1, "{e}");
        }
    }

    #[test]
    fn apps_that_name_no_app_are_warned_about() {
        let id = crate::model::ids::encode(
            crate::model::ids::Kind::App,
            crate::model::ids::Parts {
                ts_ms: 1,
                key: 2,
                rand: 3,
            },
        );
        let mut config = Config::default();
        let apps = ["shop", id.as_str(), "app_shop", "a b", "app_"];
        config.auth.tokens.push(crate::config::TokenConfig {
            name: "t".into(),
            sha256: [0; 32],
            scopes: vec![crate::config::Scope::Ingest],
            apps: Some(apps.iter().map(|s| s.to_string()).collect()),
            rate_limit: None,
        });
        let paths: Vec<String> = warnings(&config).into_iter().map(|w| w.path).collect();
        assert_eq!(
            paths,
            [
                "auth.tokens[0].apps[2]",
                "auth.tokens[0].apps[3]",
                "auth.tokens[0].apps[4]"
            ]
        );
    }

    #[test]
    fn the_default_config_has_no_files_to_load() {
        let prepared = prepare(&Config::default()).expect("no files");
        assert!(prepared.tls.is_none());
    }
}
