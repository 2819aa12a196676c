//! Runs the embedded development authorization server on its own, for
//! tests and for trying the sign-in without the app.
//!
//! ```sh
//! cargo run -p server --bin dev-idp -- [--addr HOST:PORT] [--config FILE] \
//!     [--app-origin URL] [--control]
//! printf %s 'a password' | cargo run -p server --bin dev-idp -- --hash-password
//! ```
//!
//! Flags override the environment: `DEV_IDP_ADDR` (default
//! `localhost:3100`), `DEV_IDP_CONFIG` (default: the built-in demo, the same
//! as `server/dev-idp.json`), `DEV_IDP_APP_ORIGIN` (default
//! `http://localhost:3000`), `DEV_IDP_CONTROL=1` (serve the `/dev/…` test
//! controls). Prints `issuer <url>` on standard output once it listens, and
//! runs until Ctrl-C.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use server::dev_idp::{self, DevIdpOptions};

const USAGE: &str = "\
usage: dev-idp [--addr HOST:PORT] [--config FILE] [--app-origin URL] [--control]
       dev-idp --hash-password   (reads the password from standard input)

environment: DEV_IDP_ADDR, DEV_IDP_CONFIG, DEV_IDP_APP_ORIGIN, DEV_IDP_CONTROL=1";

enum Command {
    Serve(DevIdpOptions),
    HashPassword,
    Help,
}

fn parse_args() -> Result<Command, String> {
    let mut opts = DevIdpOptions::default();
    if let Ok(addr) = std::env::var("DEV_IDP_ADDR") {
        opts.addr = addr;
    }
    if let Some(path) = std::env::var_os("DEV_IDP_CONFIG").filter(|p| !p.is_empty()) {
        opts.config_path = Some(PathBuf::from(path));
    }
    if let Ok(origin) = std::env::var("DEV_IDP_APP_ORIGIN") {
        opts.app_origin = origin;
    }
    opts.enable_control = match std::env::var("DEV_IDP_CONTROL").as_deref() {
        Err(_) | Ok("" | "0" | "false") => false,
        Ok("1" | "true") => true,
        Ok(other) => return Err(format!("DEV_IDP_CONTROL must be 1 or 0, not {other:?}")),
    };

    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--addr" => opts.addr = value("--addr")?,
            "--config" => opts.config_path = Some(PathBuf::from(value("--config")?)),
            "--app-origin" => opts.app_origin = value("--app-origin")?,
            "--control" => opts.enable_control = true,
            "--hash-password" => return Ok(Command::HashPassword),
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Command::Serve(opts))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let opts = match parse_args() {
        Ok(Command::Serve(opts)) => opts,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::HashPassword) => return hash_password(),
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };

    let running = match dev_idp::start(opts).await {
        Ok(running) => running,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    println!("issuer {}", running.issuer);
    if let Err(err) = tokio::signal::ctrl_c().await {
        eprintln!("error: cannot wait for Ctrl-C: {err}");
    }
    running.shutdown().await;
    ExitCode::SUCCESS
}

/// Prints the config-file hash of the password read from standard input
/// (one trailing newline is ignored).
fn hash_password() -> ExitCode {
    let mut password = String::new();
    if let Err(err) = std::io::stdin().read_to_string(&mut password) {
        eprintln!("error: cannot read the password from standard input: {err}");
        return ExitCode::from(2);
    }
    let password = password
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&password);
    match dev_idp::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(_) => {
            eprintln!("error: the system random generator failed");
            ExitCode::from(1)
        }
    }
}
