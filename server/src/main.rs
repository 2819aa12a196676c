//! The axum server: reads the configuration, starts the embedded
//! development authorization server when no `ISSUER` is configured (and
//! only where others cannot reach it, unless `DEV_IDP=1`), discovers the
//! issuer and loads its keys, then serves the Leptos app and its protected
//! server functions through its own connection loop (`server::edge::serve`:
//! deadlines, a connection cap under the descriptor limit), with the
//! Prometheus endpoint on its own address when `METRICS_ADDR` is set. On
//! SIGTERM or SIGINT it stops accepting, lets the requests in flight finish
//! (at most `SHUTDOWN_GRACE_SECS`) and exits with status 0.
//!
//! Start-up, step by step (the numbered comments in [`run`]):
//! 1. the settings: Leptos's, then ours ([`Config`]), then logging;
//! 2. the connection limits, from the descriptor limit;
//! 3. the issuer: `ISSUER`, or the embedded development server;
//! 4. the issuer's discovery document and keys: the bearer validator;
//! 5. the app: pages, server functions, files, probes (`server::app_with`);
//! 6. the listeners: the site, and the metrics when `METRICS_ADDR` is set;
//! 7. serving until SIGTERM or SIGINT, then letting requests finish.
//!
//! Run with `cargo leptos watch` (or `./dev.sh run`); settings come from the
//! environment and `.env` (DESIGN.md, "Configuration"). Any problem before
//! listening prints one line naming it and exits with status 2.
//! `server doctor` checks that configuration against the issuer instead
//! (`server/src/doctor/`).

use std::fmt::Display;
use std::process::ExitCode;
use std::time::Duration;

use leptos::prelude::get_configuration;
use server::bearer::nonce::NonceKey;
use server::bearer::{DpopOptions, Policy, Validator, ValidatorOptions};
use server::browser_auth::BrowserAuth;
use server::config::{Config, DevIdpExposure};
use server::dev_idp::{self, DevIdpOptions};
use server::edge::serve::{self, ServeOptions, Server};
use server::ops::telemetry::Metrics;
use server::RouterSettings;
use tokio::sync::watch;

#[tokio::main]
async fn main() -> ExitCode {
    // `server doctor [--token …]` checks the configuration instead of serving.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == "doctor")
    {
        let args: Vec<String> = std::env::args_os()
            .skip(2)
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        return server::doctor::main(&args).await;
    }
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(line) => {
            eprintln!("error: {line}");
            ExitCode::from(2)
        }
    }
}

/// Everything that can stop start-up returns its one-line message.
async fn run() -> Result<(), String> {
    // 1. Settings.
    let conf = get_configuration(None).map_err(context(
        "cannot read the Leptos configuration (LEPTOS_* variables)",
    ))?;
    let mut leptos_options = conf.leptos_options;
    // cargo-leptos tells the server it runs whether file names are hashed
    // (LEPTOS_HASH_FILES); a release binary started on its own finds out
    // from the hash file the build left beside it.
    if std::env::var_os("LEPTOS_HASH_FILES").is_none() {
        leptos_options.hash_files = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.join(&*leptos_options.hash_file)))
            .is_some_and(|path| path.is_file());
    }
    let site_addr = leptos_options.site_addr;
    let config = Config::from_env(site_addr).map_err(|err| err.to_string())?;
    server::ops::logging::init(config.log_format);

    // 2. Connection limits.
    let fd_limit = serve::descriptor_limit().map_err(context(
        "cannot read the file-descriptor limit (getrlimit RLIMIT_NOFILE)",
    ))?;
    let max_connections = config
        .max_connections(fd_limit)
        .map_err(|err| err.to_string())?;
    tracing::info!(
        descriptor_limit = fd_limit,
        max_connections,
        header_read_timeout = ?config.header_read_timeout,
        keepalive_idle = ?config.keepalive_idle,
        body_read_timeout = ?config.body_read_timeout,
        send_timeout = ?config.send_timeout,
        body_limit = config.body_limit,
        "connection limits"
    );

    // 3. The issuer.
    let metrics = config.metrics_addr.map(|_| Metrics::new());
    // Kept alive for as long as the server runs.
    let mut _dev_idp = None;
    let (issuer, client_id) = match &config.issuer {
        Some(issuer) => (issuer.clone(), config.client_id.clone()),
        None => {
            match config.dev_idp_exposure() {
                DevIdpExposure::Loopback => {}
                DevIdpExposure::OnPurpose { warning } => tracing::warn!("{warning}"),
                DevIdpExposure::Refused { reason } => return Err(reason),
            }
            let running = dev_idp::start(DevIdpOptions {
                addr: config.dev_idp.addr.clone(),
                config_path: config.dev_idp.config_path.clone(),
                app_origin: config.public_origin.clone(),
                enable_control: config.dev_idp.enable_control,
            })
            .await
            .map_err(context(
                "cannot start the development authorization server (ISSUER is not set)",
            ))?;
            tracing::info!(issuer = %running.issuer, "ISSUER is not set: using the embedded development authorization server");
            if let Some(metrics) = &metrics {
                metrics.watch_dev_idp(running.stats.clone());
            }
            let issuer = running.issuer.clone();
            let client_id = config
                .client_id
                .clone()
                .unwrap_or_else(|| running.client_id.clone());
            _dev_idp = Some(running);
            (issuer, Some(client_id))
        }
    };

    // 4. Discovery and keys.
    // Config requires CLIENT_ID whenever ISSUER is set; the dev server has one.
    let client_id_for_browser = client_id
        .clone()
        .ok_or("CLIENT_ID is not set: the browser needs the client id to sign in")?;
    let policy = Policy::new(
        issuer.clone(),
        config.audience.clone(),
        client_id,
        config.leeway,
    )
    .map_err(|err| err.to_string())?;
    tracing::info!(
        dpop = config.dpop.browser,
        require_dpop = config.dpop.required,
        dpop_nonce = config.dpop.nonce_secret.is_some(),
        "DPoP settings"
    );
    let options = ValidatorOptions {
        dpop: dpop_options(&config)?,
        ..ValidatorOptions::default()
    };
    let (validator, discovery) = Validator::discover(policy, options)
        .await
        .map_err(context(format!("ISSUER {issuer}")))?;
    let _refresh = validator.spawn_refresh();
    tracing::info!(issuer = %issuer, keys = ?validator.jwks().kids(), "issuer discovered, keys loaded");

    if let Some(metrics) = &metrics {
        metrics.watch_validator(&validator);
    }
    // 5. The app.
    let browser_auth = BrowserAuth::new(
        BrowserAuth::public_config(&config, client_id_for_browser, &discovery)?,
        validator.clone(),
    );
    let app = server::app_with(
        leptos_options,
        validator,
        browser_auth,
        RouterSettings {
            metrics: metrics.clone(),
            ..RouterSettings::from_config(&config)
        },
    );
    // 6. The listeners.
    let listener = serve::bind(site_addr).map_err(context(format!(
        "cannot listen on {site_addr} (LEPTOS_SITE_ADDR)"
    )))?;
    let server = Server::new(
        listener,
        ServeOptions {
            header_read_timeout: config.header_read_timeout,
            keepalive_idle: config.keepalive_idle,
            body_read_timeout: config.body_read_timeout,
            send_timeout: config.send_timeout,
            max_connections,
            shutdown_grace: Some(config.shutdown_grace),
        },
    );

    let (stop, stopping) = watch::channel(false);
    let metrics_server = match (&metrics, config.metrics_addr) {
        (Some(metrics), Some(addr)) => {
            if let Some(warning) = config.metrics_exposure_warning() {
                tracing::warn!("{warning}");
            }
            metrics.watch_connections(server.stats());
            let listener = serve::bind(addr)
                .map_err(context(format!("cannot listen on {addr} (METRICS_ADDR)")))?;
            let metrics_server = Server::new(
                listener,
                ServeOptions {
                    header_read_timeout: config.header_read_timeout,
                    keepalive_idle: config.keepalive_idle,
                    body_read_timeout: config.body_read_timeout,
                    send_timeout: config.send_timeout,
                    max_connections: METRICS_MAX_CONNECTIONS,
                    shutdown_grace: Some(Duration::from_secs(1)),
                },
            );
            let _upkeep = metrics.spawn_upkeep();
            tracing::info!("metrics on http://{addr}/metrics");
            let (done, finished) = watch::channel(false);
            let task = tokio::spawn(metrics_server.run(metrics.router(), stopped(finished)));
            Some((done, task))
        }
        _ => None,
    };

    // 7. Serve until a signal, then let the requests in flight finish.
    tokio::spawn(async move {
        let signal = shutdown_signal().await;
        tracing::info!(
            signal,
            grace = ?config.shutdown_grace,
            "shutting down: no longer accepting; requests in flight get the grace period to finish"
        );
        let _ = stop.send(true);
    });
    tracing::info!("listening on {}", config.public_origin);
    server.run(app, stopped(stopping)).await;
    // Scrapes are answered until the app's last request is done.
    if let Some((done, task)) = metrics_server {
        let _ = done.send(true);
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// What the bearer layer does with DPoP: the DPoP scheme is always taken
/// (its proofs name the public origin), Bearer tokens only without
/// `REQUIRE_DPOP`, nonces with `DPOP_NONCE`.
fn dpop_options(config: &Config) -> Result<DpopOptions, String> {
    let nonce = match &config.dpop.nonce_secret {
        Some(secret) => Some(
            NonceKey::new(secret.bytes(), config.leeway.as_secs() as i64)
                .map_err(|reason| format!("DPOP_NONCE_SECRET is not valid: {reason}"))?,
        ),
        None => None,
    };
    Ok(DpopOptions {
        public_origin: Some(config.public_origin.clone()),
        required: config.dpop.required,
        nonce,
        ..DpopOptions::default()
    })
}

/// The metrics listener's own connection cap: a scraper or two.
const METRICS_MAX_CONNECTIONS: usize = 64;

fn context<E: Display>(what: impl Display) -> impl FnOnce(E) -> String {
    move |err| format!("{what}: {err}")
}

/// Resolves on SIGTERM (what `kill`, systemd and Kubernetes send) or
/// SIGINT (Ctrl-C), with the signal's name. A handler that cannot be
/// installed leaves that signal's default action (the process ends).
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let wait = |kind| async move {
        match signal(kind) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = wait(SignalKind::terminate()) => "SIGTERM",
        () = wait(SignalKind::interrupt()) => "SIGINT",
    }
}

/// Resolves once `true` is sent on `rx` (never if the sender is dropped
/// first).
async fn stopped(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}
