//! What a config may say but surely does not mean: not errors (the config loads), but worth a
//! line each. `check-config`, `serve` and a reload print them and go on.

use super::{is_api_name, Config, ConfigError};
use crate::model::ids::{self, Kind};

/// What `config` allows but surely does not mean, each under its key: an ingest token's
/// `apps` entry that is neither an app uid nor a well-formed app id (`app_` and 27 base62
/// characters) names no app, so the token is refused (403) wherever it is used with it.
pub fn warnings(config: &Config) -> Vec<ConfigError> {
    let mut out = Vec::new();
    for (i, token) in config.auth.tokens.iter().enumerate() {
        for (j, app) in token.apps.iter().flatten().enumerate() {
            if !names_an_app(app) {
                out.push(ConfigError {
                    path: format!("auth.tokens[{i}].apps[{j}]"),
                    message: format!(
                        "{app:?} is neither an app uid nor an app id (app_ and 27 letters or \
                         digits), so it names no app"
                    ),
                });
            }
        }
    }
    out
}

/// Whether `s` can be an app's uid or id.
fn names_an_app(s: &str) -> bool {
    let prefix = Kind::App.prefix();
    match s.starts_with(prefix) {
        true => ids::decode(Kind::App, s).is_some(),
        false => is_api_name(s),
    }
}
