//! The `hookd` binary: parses the command line and runs one subcommand.
//!
//! Exit status: 0 on success; 2 when a config (or a file it names, or its listen address, or
//! a command-line argument) is wrong, with every problem on standard error; 1 on any other
//! failure.
//! Output goes through fallible writes, so a closed pipe is an error, not a panic.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use hookd::cli::{Cli, Command, InspectArgs, StatusArgs, TokenCommand, TokenNewArgs};
use hookd::config::{self, tokens, Config, ConfigErrors, LoadError, Scope};
use hookd::time::SystemClock;

// Why mimalloc: every request makes many small, short-lived allocations
// (headers, JSON, log records) on each shard thread. mimalloc's per-thread
// free lists serve those without cross-thread locking, which suits the
// thread-per-core design, and it returns memory readily, keeping RSS low.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for a config (or token entry) with problems.
const EXIT_INVALID: u8 = 2;
/// Exit status of `status` and `inspect` when they worked and found a problem.
const EXIT_FOUND_PROBLEMS: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            // Nothing more can be done if stderr is gone too.
            // Each cause once: some errors' messages already end with their source's.
            let why = hookd::preflight::with_sources(err.as_ref());
            let _ = writeln!(io::stderr(), "hookd: error: {why}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(args.config()),
        Command::CheckConfig(args) => check_config(args.config()),
        Command::Token(TokenCommand::New(args)) => token_new(&args),
        Command::Status(args) => status(&args),
        Command::Inspect(args) => inspect(&args),
        Command::Version => {
            writeln!(io::stdout(), "hookd {}", env!("CARGO_PKG_VERSION"))
                .context("writing to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Loads the config at `path`, or the embedded default, and the files it names
/// ([`hookd::preflight`]); `serve` and `check-config` both start here. On failure, every
/// problem has been written to stderr and the exit status is returned.
fn load_config(path: Option<&Path>) -> anyhow::Result<Result<Loaded, ExitCode>> {
    let (label, result) = match path {
        Some(path) => (path.display().to_string(), config::load(path)),
        None => (
            "embedded default config".to_owned(),
            config::from_toml_str(config::DEFAULT_TOML).map_err(|errors| LoadError::Invalid {
                path: "<embedded default config>".into(),
                errors,
            }),
        ),
    };
    let config = match result {
        Ok(config) => config,
        Err(err) => {
            report_load_error(&label, &err).context("writing to stderr")?;
            return Ok(Err(ExitCode::from(EXIT_INVALID)));
        }
    };
    report_warnings(&label, &hookd::preflight::warnings(&config)).context("writing to stderr")?;
    match hookd::preflight::prepare(&config) {
        Ok(prepared) => Ok(Ok(Loaded {
            label,
            config,
            prepared,
        })),
        Err(errors) => {
            report_problems(&label, &errors).context("writing to stderr")?;
            Ok(Err(ExitCode::from(EXIT_INVALID)))
        }
    }
}

/// A config that loaded, with the files it names.
struct Loaded {
    /// How problems name it: its path, or "embedded default config".
    label: String,
    config: Config,
    prepared: hookd::preflight::Prepared,
}

/// Writes `err` to stderr, one line per problem: `LABEL: key.path: message`.
fn report_load_error(label: &str, err: &LoadError) -> io::Result<()> {
    match err {
        LoadError::Read { source, .. } => writeln!(io::stderr(), "hookd: {err}: {source}"),
        LoadError::TooLarge { .. } => writeln!(io::stderr(), "hookd: {err}"),
        LoadError::Invalid { errors, .. } => report_problems(label, errors),
    }
}

/// One line per warning, `LABEL: warning: key.path: message`.
fn report_warnings(label: &str, warnings: &[config::ConfigError]) -> io::Result<()> {
    let mut stderr = io::stderr().lock();
    for w in warnings {
        writeln!(stderr, "{label}: warning: {w}")?;
    }
    Ok(())
}

/// One line per problem, `LABEL: key.path: message`, then how many there were.
fn report_problems(label: &str, errors: &ConfigErrors) -> io::Result<()> {
    let mut stderr = io::stderr().lock();
    for problem in &errors.errors {
        writeln!(stderr, "{label}: {problem}")?;
    }
    let n = errors.errors.len();
    let s = if n == 1 { "" } else { "s" };
    writeln!(stderr, "hookd: {label}: {n} problem{s}")
}

fn serve(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let Loaded {
        label,
        config,
        prepared,
    } = match load_config(path)? {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    // Before the store opens (and a first-start admin token is made): one hookd per address.
    let mut claim = match claim_address(&label, &config)? {
        Ok(claim) => claim,
        Err(code) => return Ok(code),
    };
    hookd::logging::init(&config.log);
    hookd::panics::install_hook();
    // Before any thread starts, so that all of them inherit the mask.
    hookd::signals::block().context("blocking signals")?;
    hookd::http::tls::install_crypto_provider();
    let started = std::time::Instant::now();
    let (svc, opened, ingest) = open(&config)?;
    let (notifier, watchdog_interval) = systemd_from_env();
    let beat_every = hookd::systemd::beat_every(watchdog_interval);
    let shards =
        match hookd::shard::start(ingest.clone(), &config, prepared, &mut claim, beat_every) {
            Ok(s) => s,
            Err(e) => {
                svc.close();
                return Err(e.into());
            }
        };
    writeln!(
        io::stdout(),
        "listening on {} ({} shards, {}, ready in {} ms)",
        shards.addr,
        config.effective_shards(),
        shards.driver.as_str(),
        started.elapsed().as_millis()
    )
    .context("writing to stdout")?;
    // Only a start that got this far keeps (and shows) the first-start admin token.
    if let Some(token) = &opened.new_admin_token {
        if let Err(e) = svc.keep_admin_token(token) {
            shards.stop();
            svc.close();
            return Err(anyhow::Error::new(e).context("keeping the first-start admin token"));
        }
        show_admin_token(token).context("writing to stderr")?;
    }
    // Every shard serves and recovery is done: ready, and from now on watched.
    let status = format!("listening on {}", shards.addr);
    if let Err(e) = notifier.ready(&status) {
        tracing::warn!(error = %e, "readiness notification not sent");
    }
    serve_until_stopped(&ingest, path, &notifier, watchdog_interval)?;
    tracing::info!("stopping: draining connections");
    shards.stop();
    svc.close();
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Holds `server.listen` for this process (one hookd per address), or reports why not (exit 2).
fn claim_address(
    label: &str,
    config: &config::Config,
) -> anyhow::Result<Result<hookd::http::claim::Claim, ExitCode>> {
    match hookd::http::claim::claim(config.server.listen) {
        Ok(claim) => Ok(Ok(claim)),
        Err(e) => {
            let problem = config::ConfigError {
                path: "server.listen".to_owned(),
                message: hookd::preflight::with_sources(&e),
            };
            let errors = ConfigErrors {
                errors: vec![problem],
            };
            report_problems(label, &errors).context("writing to stderr")?;
            Ok(Err(ExitCode::from(EXIT_INVALID)))
        }
    }
}

/// Opens and recovers the store, sets up operational webhooks and writes the config's static
/// definitions: everything before the shards start.
fn open(
    config: &config::Config,
) -> anyhow::Result<(
    Arc<hookd::service::Service>,
    hookd::service::Opened,
    Arc<hookd::ingest::Ingest>,
)> {
    let (svc, opened) = hookd::service::Service::open(config.clone(), Arc::new(SystemClock))?;
    let r = &opened.report;
    tracing::info!(
        path = %config.storage.path.display(),
        segments = r.segments,
        records = r.records,
        truncated = r.truncated.len(),
        quarantined = r.quarantined.len(),
        "store opened"
    );
    // The operational webhooks' app and endpoint, as the config has them.
    let ingest = match hookd::ingest::Ingest::open(svc.clone()) {
        Ok(ingest) => ingest,
        Err(e) => {
            svc.close();
            return Err(anyhow::Error::new(e).context("setting up operational webhooks"));
        }
    };
    // The config's [[apps]] and [[event_types]], and the endpoint policy, before serving.
    if let Err(e) = hookd::reload::apply_at_start(&ingest) {
        svc.close();
        return Err(anyhow::Error::new(e).context("applying the config's static definitions"));
    }
    Ok((svc, opened, ingest))
}

/// Serves until SIGINT or SIGTERM, reloading the config on SIGHUP, with the systemd watchdog
/// pinged meanwhile when systemd asks for it.
fn serve_until_stopped(
    ingest: &hookd::ingest::Ingest,
    path: Option<&Path>,
    notifier: &Arc<hookd::systemd::Notifier>,
    watchdog_interval: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    let watchdog = watchdog_interval.and_then(|interval| {
        hookd::systemd::Watchdog::start(notifier.clone(), ingest.svc.liveness.clone(), interval)
            .map_err(|e| tracing::warn!(error = %e, "cannot start the watchdog thread"))
            .ok()
    });
    loop {
        match hookd::signals::wait().context("waiting for signals")? {
            hookd::signals::Signal::Stop => break,
            hookd::signals::Signal::Reload => hookd::reload::on_sighup(ingest, path),
        }
    }
    // systemd stops enforcing the watchdog once the unit stops; so does hookd.
    if let Some(w) = watchdog {
        w.stop();
    }
    if let Err(e) = notifier.stopping("draining connections") {
        tracing::warn!(error = %e, "stopping notification not sent");
    }
    Ok(())
}

fn show_admin_token(token: &str) -> io::Result<()> {
    let mut err = io::stderr().lock();
    writeln!(
        err,
        "hookd: first start: an admin token was created; it is shown once:"
    )?;
    writeln!(err, "\n    {token}\n")?;
    writeln!(
        err,
        "hookd: only its SHA-256 is kept. Use it as 'Authorization: Bearer <token>'."
    )
}

/// The systemd notifier (`$NOTIFY_SOCKET`) and watchdog interval (`$WATCHDOG_USEC`). hookd
/// runs without them, with a warning, when they cannot be understood.
fn systemd_from_env() -> (Arc<hookd::systemd::Notifier>, Option<std::time::Duration>) {
    use hookd::systemd::{watchdog_from_env, Notifier};
    let notifier = Notifier::from_env().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "systemd notifications disabled");
        Notifier::disabled()
    });
    let watchdog = match watchdog_from_env() {
        Ok(w) if notifier.is_enabled() => w,
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "systemd watchdog disabled");
            None
        }
    };
    if let Some(interval) = watchdog {
        tracing::info!(
            interval_ms = interval.as_millis() as u64,
            "systemd watchdog on"
        );
    }
    (Arc::new(notifier), watchdog)
}

fn check_config(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    match load_config(path)? {
        Ok(_) => {
            writeln!(io::stdout(), "ok").context("writing to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(code) => Ok(code),
    }
}

fn token_new(args: &TokenNewArgs) -> anyhow::Result<ExitCode> {
    let token = tokens::new_token()?;
    let hash = tokens::token_sha256_hex(&token);
    let name = match &args.name {
        Some(name) => name.clone(),
        None => format!("token-{}", &hash[..8]),
    };
    let mut scopes: Vec<Scope> = args.scopes.iter().map(|&s| s.into()).collect();
    scopes.sort();
    scopes.dedup();
    let scopes: Vec<String> = scopes.iter().map(|s| format!("\"{s}\"")).collect();
    let entry = format!(
        "[[auth.tokens]]\nname = {}\nsha256 = \"{hash}\"\nscopes = [{}]\n",
        toml::Value::String(name),
        scopes.join(", ")
    );
    // The entry goes through the same validation as a config file, so that
    // what is printed is known to be accepted (a bad --name is caught here).
    if let Err(errors) = config::from_toml_str(&entry) {
        report_entry_errors(&errors).context("writing to stderr")?;
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let mut out = io::stdout().lock();
    write!(out, "{token}\n{entry}").context("writing to stdout")?;
    out.flush().context("writing to stdout")?;
    // On stderr, so that stdout stays exactly the token and the entry.
    let _ = writeln!(
        io::stderr(),
        "hookd: the token above is shown once and stored nowhere; \
         add the [[auth.tokens]] entry to hookd.toml"
    );
    Ok(ExitCode::SUCCESS)
}

fn report_entry_errors(errors: &ConfigErrors) -> io::Result<()> {
    let mut stderr = io::stderr().lock();
    for problem in &errors.errors {
        // The entry's only free-form value is the name.
        if problem.path.ends_with(".name") {
            writeln!(stderr, "hookd: token new: --name: {}", problem.message)?;
        } else {
            writeln!(stderr, "hookd: token new: {problem}")?;
        }
    }
    Ok(())
}

fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let token = match args
        .token
        .clone()
        .or_else(|| std::env::var("HOOKD_TOKEN").ok())
    {
        Some(t) if !t.is_empty() => t,
        _ => {
            writeln!(
                io::stderr(),
                "hookd: status: a read token is needed: give --token or set HOOKD_TOKEN"
            )
            .context("writing to stderr")?;
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let (summary, json) = hookd::ctl::status::fetch(&args.url, &token, args.ca_file.as_deref())
        .with_context(|| format!("status of {}", args.url))?;
    let text = match args.json {
        true => format!("{json:#}\n"),
        false => hookd::ctl::status::render(&args.url, &summary),
    };
    io::stdout()
        .write_all(text.as_bytes())
        .context("writing to stdout")?;
    Ok(match hookd::ctl::status::healthy(&summary) {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(EXIT_FOUND_PROBLEMS),
    })
}

fn inspect(args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let report = hookd::ctl::inspect::inspect(&args.data)
        .with_context(|| format!("inspect {}", args.data.display()))?;
    let now_ms = hookd::time::Clock::now_ms(&SystemClock);
    io::stdout()
        .write_all(hookd::ctl::inspect::render(&report, now_ms).as_bytes())
        .context("writing to stdout")?;
    Ok(match report.problems().is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(EXIT_FOUND_PROBLEMS),
    })
}
