//! The command line of the `hookd` binary, declared with clap's derive API.
//!
//! This module only parses; `main.rs` runs the chosen command. Every
//! subcommand and every flag carries help text (a test checks it).

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Scope;

/// A single-binary webhook appliance: durable ingest, signed delivery, retries.
#[derive(Debug, Parser)]
#[command(name = "hookd", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the webhook server.
    ///
    /// Without a config file, runs with the embedded default config: listen on
    /// 127.0.0.1:8071 and keep data under ./hookd-data. A config with
    /// problems (a file it names that cannot be used included), or a listen
    /// address another process listens on, is refused with exit status 2.
    Serve(ServeArgs),
    /// Validate a config file: print `ok`, or every problem with its key path.
    ///
    /// Loads every file the config names, as serve does (the [server.tls] certificate and
    /// key, delivery.ca_file). Exits 0 when the file is valid (warnings go to standard
    /// error), 2 when it is not (or cannot be read).
    CheckConfig(CheckConfigArgs),
    /// Create API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Ask a running hookd how it is: shards, pending deliveries, oldest pending, disk.
    ///
    /// Reads GET /api/v1/status/summary with a read token (--token, or $HOOKD_TOKEN).
    /// Exits 0 when every shard and the dispatcher are up, 3 when hookd answered but
    /// something is down, a thread stopped or a bug panicked since start, 1 when it cannot be
    /// asked (not running, token refused).
    Status(StatusArgs),
    /// Read a stopped hookd's data directory and check every record.
    ///
    /// Lists the log's segments (id, records, bytes, sequence range), records by app,
    /// pending deliveries, and decodes every record. Only reads: nothing is repaired. A
    /// store in use by a running hookd is refused. Exits 0 when every record decodes, 3 when
    /// corruption is found, 1 when the store cannot be read.
    Inspect(InspectArgs),
    /// Print the version.
    Version,
}

/// Arguments of `hookd status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Base URL of the running hookd: http://, or https:// for a hookd with [server.tls].
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8071")]
    pub url: String,
    /// PEM CA certificates to trust for an https:// URL, beside the webpki roots: the CA that
    /// signed hookd's [server.tls] certificate (for a self-signed one, that certificate).
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// A token with the read scope [default: $HOOKD_TOKEN]; the variable keeps it out of `ps`.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Print hookd's whole JSON answer instead of the summary lines.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `hookd inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The data directory (storage.path) of a stopped hookd.
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,
}

/// Arguments of `hookd serve`: the config file as `--config PATH` or as `PATH`.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct ServeArgs {
    /// Config file (TOML); without it the embedded default config is used.
    #[arg(long, short = 'c', value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Config file (TOML), the same as --config.
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
}

impl ServeArgs {
    /// The config file, however it was given.
    pub fn config(&self) -> Option<&Path> {
        self.config.as_deref().or(self.path.as_deref())
    }
}

/// Arguments of `hookd check-config`: the config file as `PATH` or as `--config PATH`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct CheckConfigArgs {
    /// Config file (TOML) to check.
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Config file (TOML) to check, the same as PATH.
    #[arg(long, short = 'c', value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl CheckConfigArgs {
    /// The config file, however it was given (clap requires one).
    pub fn config(&self) -> Option<&Path> {
        self.path.as_deref().or(self.config.as_deref())
    }
}

/// `hookd token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Generate a random token and the [[auth.tokens]] entry that accepts it.
    ///
    /// Prints the token on the first line of standard output, then the TOML
    /// entry to add to hookd.toml. Only the token's SHA-256 goes in the
    /// config; the token itself is shown once and stored nowhere.
    New(TokenNewArgs),
}

/// Arguments of `hookd token new`.
#[derive(Debug, Args)]
pub struct TokenNewArgs {
    /// Token name, shown in logs and metrics [default: token-<first 8 hex digits of its hash>].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Scope to grant; repeat the flag or separate with commas for several.
    #[arg(
        long = "scope",
        value_name = "SCOPE",
        value_enum,
        value_delimiter = ',',
        default_value = "admin"
    )]
    pub scopes: Vec<ScopeArg>,
}

/// A token scope as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// Manage apps, endpoints and tokens.
    Admin,
    /// Send events.
    Ingest,
    /// Read events, attempts and state.
    Read,
}

impl From<ScopeArg> for Scope {
    fn from(scope: ScopeArg) -> Scope {
        match scope {
            ScopeArg::Admin => Scope::Admin,
            ScopeArg::Ingest => Scope::Ingest,
            ScopeArg::Read => Scope::Read,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every subcommand has an about text and every argument a help text.
    #[test]
    fn everything_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if cmd.get_about().is_none() {
                missing.push(format!("subcommand {path}"));
            }
            for arg in cmd.get_arguments() {
                if arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "hookd", &mut missing);
        assert_eq!(missing, Vec::<String>::new());
    }

    #[test]
    fn parses_subcommands() {
        let cli = Cli::try_parse_from(["hookd", "serve"]).expect("serve");
        match cli.command {
            Command::Serve(args) => assert_eq!(args.config(), None),
            other => panic!("parsed as {other:?}"),
        }
        // Both commands take the file either way.
        let file = Some(Path::new("/etc/hookd.toml"));
        for argv in [
            &["hookd", "serve", "--config", "/etc/hookd.toml"][..],
            &["hookd", "serve", "-c", "/etc/hookd.toml"],
            &["hookd", "serve", "/etc/hookd.toml"],
        ] {
            match Cli::try_parse_from(argv).expect("serve").command {
                Command::Serve(args) => assert_eq!(args.config(), file, "{argv:?}"),
                other => panic!("parsed as {other:?}"),
            }
        }
        for argv in [
            &["hookd", "check-config", "/etc/hookd.toml"][..],
            &["hookd", "check-config", "--config", "/etc/hookd.toml"],
        ] {
            match Cli::try_parse_from(argv).expect("check-config").command {
                Command::CheckConfig(args) => assert_eq!(args.config(), file, "{argv:?}"),
                other => panic!("parsed as {other:?}"),
            }
        }
        assert!(Cli::try_parse_from(["hookd", "check-config"]).is_err());
        assert!(Cli::try_parse_from(["hookd", "serve", "a.toml", "--config", "b.toml"]).is_err());
        assert!(Cli::try_parse_from(["hookd", "check-config", "a.toml", "-c", "b.toml"]).is_err());

        match Cli::try_parse_from(["hookd", "status"])
            .expect("status")
            .command
        {
            Command::Status(args) => {
                assert_eq!(args.url, "http://127.0.0.1:8071");
                assert_eq!((args.token, args.json), (None, false));
            }
            other => panic!("parsed as {other:?}"),
        }
        match Cli::try_parse_from(["hookd", "inspect", "--data", "/var/lib/hookd"])
            .expect("inspect")
            .command
        {
            Command::Inspect(args) => assert_eq!(args.data, PathBuf::from("/var/lib/hookd")),
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["hookd", "inspect"]).is_err());
        assert!(Cli::try_parse_from(["hookd", "token", "new", "--scope", "root"]).is_err());
    }

    #[test]
    fn token_new_scopes() {
        let scopes = |argv: &[&str]| match Cli::try_parse_from(argv).expect("parses").command {
            Command::Token(TokenCommand::New(args)) => args.scopes,
            other => panic!("parsed as {other:?}"),
        };
        assert_eq!(scopes(&["hookd", "token", "new"]), vec![ScopeArg::Admin]);
        assert_eq!(
            scopes(&["hookd", "token", "new", "--scope", "ingest,read"]),
            vec![ScopeArg::Ingest, ScopeArg::Read]
        );
        assert_eq!(
            scopes(&["hookd", "token", "new", "--scope", "read", "--scope", "ingest"]),
            vec![ScopeArg::Read, ScopeArg::Ingest]
        );
        assert_eq!(Scope::from(ScopeArg::Ingest), Scope::Ingest);
    }
}
