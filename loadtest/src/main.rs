//! Load and fault harness for the resource server (issue 6): drives the
//! real release server binary over loopback and checks every answer. A
//! workspace member of its own, not part of the product: it talks to the
//! server only as a client of the API would, over HTTP, with its own issuer
//! and its own tokens, and shares no code with the `server` crate.
//!
//! Run everything with `loadtest/run.sh` (builds, then runs 3 passes and
//! prints the table), or by hand:
//!
//! ```sh
//! LEPTOS_OUTPUT_NAME=okta-implicit cargo build --release -p server --bin server
//! cargo build --release -p loadtest
//! target/release/load --server target/release/server --runs 3
//! target/release/load --cases 1,2 --runs 1 --short   # quick smoke run
//! target/release/load --cases 3 --runs 3 --perf       # cold tokens, and profiles
//! target/release/load --cases 3 --pace-us 6400        # the same at 5,000 requests/s
//! ```
//!
//! What it does:
//! - runs its own issuer on 127.0.0.1:0 (discovery and JWKS, keys it holds
//!   the private halves of), which can go down, hang, send 10 MB of
//!   garbage or invalid JSON, publish a new key, and counts JWKS fetches
//!   (`issuer.rs`);
//! - starts `target/release/server` as a child with `ISSUER` pointing at
//!   it, a fresh process per case so no cache carries over (cases 1 and 2
//!   share one: they are measured in alternating windows, see
//!   `cases::paired_case`), and waits until `/api/health` answers
//!   (`server_process.rs`);
//! - mints every token before timing starts (RSA signing is far slower
//!   than verifying), on both cores (`tokens.rs`);
//! - drives the server with N keep-alive HTTP/1.1 connections (hyper's
//!   bare client, one request in flight per connection), checks each
//!   answer's status, headers and body against the decision expected for
//!   that request (`driver.rs`, with the plan of each case in `cases.rs`,
//!   case 3's in `cold.rs`, case 10's, DPoP, in `dpop.rs`, case 11's,
//!   the Node peers, in `peers.rs`), and reports
//!   throughput, p50 and p99, and for cases 3 and 10 the server's CPU per
//!   request next to a raw RSA (3) or P-256 (10) verify
//!   timed in this process (with `--perf`, `perf record` profiles of the
//!   server too: `profile.rs`);
//! - repeats each case `--runs` times and prints median and min–max of
//!   every figure, with the targets of the issue next to them
//!   (`report.rs`).
//!
//! With `--cluster 1,2,4` it runs the scale-out cases of issue 14 instead,
//! against `deploy/run-cluster.sh N` (N instances behind nginx, started
//! with this harness's issuer): see `cluster.rs`.
//!
//! This file reads the arguments and runs the cases in order.
//!
//! Only loopback is ever contacted; every loop is bounded in time or in
//! count.

mod cases;
mod cluster;
mod cold;
mod dpop;
mod driver;
mod issuer;
mod peers;
mod profile;
mod report;
mod rng;
mod server_process;
mod tokens;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cases::{
    case4_mix, case5_rss, case6_storm, case7_rotation, case8_outage, case9_faults, paired_case, Ctx,
};
use crate::cold::case3_cold;
use crate::dpop::case10_dpop;
use crate::issuer::Issuer;
use crate::peers::case11_peers;
use crate::report::Results;
use crate::server_process::Launcher;
use crate::tokens::Tokens;

// The audience and client id of every token the harness mints: the server
// is started with this `CLIENT_ID` and its default `AUDIENCE`.
const AUDIENCE: &str = "api://default";
const CLIENT_ID: &str = "0oa-load-spa";

fn main() {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("error: {msg}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let ok = runtime.block_on(run(args));
    runtime.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(if ok { 0 } else { 1 });
}

const USAGE: &str = "usage: load [--server PATH] [--runs N] [--cases 1,2,...] [--short] [--site-root DIR] [--perf] [--pace-us N] [--connections N]
       load --cluster 1,2,4 [--cluster-script deploy/run-cluster.sh] [--no-retry-post] [--server PATH] [--runs N]";

struct Args {
    server: PathBuf,
    runs: usize,
    cases: Vec<u32>,
    /// Durations divided by ten, for trying the harness out.
    short: bool,
    site_root: Option<PathBuf>,
    /// Case 3 also profiles the server with `perf record`, each kind of
    /// traffic alone (`profile.rs`).
    perf: bool,
    /// Case 3 paces each connection at one request per this many µs
    /// (open loop) instead of sending the next request on each answer.
    pace_us: Option<u64>,
    /// Keep-alive connections for case 11 (the peers); 32 by default, as
    /// the other cases.
    connections: usize,
    /// Cluster sizes for the scale-out cases (issue 14), if given.
    cluster: Vec<usize>,
    cluster_script: PathBuf,
    no_retry_post: bool,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut args = Args {
            server: PathBuf::from("target/release/server"),
            runs: 3,
            cases: (1..=10).collect(),
            short: false,
            site_root: None,
            perf: false,
            pace_us: None,
            connections: cases::WORKERS,
            cluster: Vec::new(),
            cluster_script: PathBuf::from("deploy/run-cluster.sh"),
            no_retry_post: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = || it.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--server" => args.server = PathBuf::from(value()?),
                "--runs" => args.runs = value()?.parse().map_err(|_| "--runs: a number")?,
                "--cases" => {
                    args.cases = value()?
                        .split(',')
                        .map(|c| c.trim().parse().map_err(|_| format!("bad case {c:?}")))
                        .collect::<Result<_, _>>()?
                }
                "--short" => args.short = true,
                "--site-root" => args.site_root = Some(PathBuf::from(value()?)),
                "--perf" => args.perf = true,
                "--pace-us" => {
                    args.pace_us = Some(match value()?.parse() {
                        Ok(n @ 100..=1_000_000) => n,
                        _ => return Err("--pace-us: 100..=1000000".into()),
                    })
                }
                "--connections" => {
                    args.connections = match value()?.parse() {
                        Ok(n @ 1..=1000) => n,
                        _ => return Err("--connections: 1..=1000".into()),
                    }
                }
                "--cluster" => {
                    args.cluster = value()?
                        .split(',')
                        .map(|n| match n.trim().parse() {
                            Ok(n @ 1..=16) => Ok(n),
                            _ => Err(format!("bad cluster size {n:?} (1-16)")),
                        })
                        .collect::<Result<_, _>>()?
                }
                "--cluster-script" => args.cluster_script = PathBuf::from(value()?),
                "--no-retry-post" => args.no_retry_post = true,
                "-h" | "--help" => return Err("help".into()),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if args.runs == 0 || args.runs > 20 {
            return Err("--runs must be 1..=20".into());
        }
        Ok(args)
    }

    /// `full` normally, a tenth of it with `--short`.
    fn secs(&self, full: u64) -> Duration {
        if self.short {
            Duration::from_millis(full * 100)
        } else {
            Duration::from_secs(full)
        }
    }
}

/// Mints the tokens, then runs the chosen cases `--runs` times and prints
/// the table; false if any check failed.
async fn run(args: Args) -> bool {
    let work = PathBuf::from("target/load");
    if let Err(e) = std::fs::create_dir_all(&work) {
        eprintln!("error: cannot create {}: {e}", work.display());
        return false;
    }
    let work = work.canonicalize().expect("work dir");
    let site_root = match &args.site_root {
        Some(p) => p.clone(),
        None if Path::new("target/site").is_dir() => PathBuf::from("target/site"),
        None => {
            // The server needs a site root only for static files.
            let p = work.join("site");
            let _ = std::fs::create_dir_all(&p);
            p
        }
    };
    let site_root = site_root.canonicalize().unwrap_or(site_root);
    let server_bin = match args.server.canonicalize() {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "error: server binary {}: {e} (cargo build --release -p server --bin server)",
                args.server.display()
            );
            return false;
        }
    };
    let issuer = Issuer::start().await;
    let fresh = if args.short || !args.cluster.is_empty() {
        4_000
    } else {
        24_000
    };
    println!(
        "minting {} tokens (RSA-2048 signatures) on {} threads…",
        fresh + 2_700,
        std::thread::available_parallelism().map_or(2, |n| n.get())
    );
    let t0 = Instant::now();
    let iss = issuer.issuer().to_string();
    let tokens = tokio::task::spawn_blocking(move || Tokens::mint(&iss, fresh))
        .await
        .expect("minting");
    println!("minted in {:.1} s", t0.elapsed().as_secs_f64());
    if !args.cluster.is_empty() {
        let results = Results::default();
        let cluster_args = cluster::ClusterArgs {
            sizes: args.cluster.clone(),
            script: args
                .cluster_script
                .canonicalize()
                .unwrap_or(args.cluster_script.clone()),
            server: server_bin,
            no_retry_post: args.no_retry_post,
        };
        cluster::run(&cluster_args, &issuer, &tokens, &results, args.runs, &work).await;
        return results.finish(args.runs);
    }
    let ctx = Ctx {
        launcher: Launcher {
            bin: server_bin,
            site_root,
            work,
        },
        tokens,
        issuer,
        results: Results::default(),
        args,
    };
    for run in 1..=ctx.args.runs {
        println!("\n=== run {run} of {} ===", ctx.args.runs);
        // Case 2's p99, for cases 6 and 9.
        let mut case2_p99 = f64::NAN;
        let mut paired_done = false;
        for case in ctx.args.cases.clone() {
            println!("case {case}:");
            let t = Instant::now();
            match case {
                // Measured together (see `paired_case`): asking for
                // either runs both, once.
                1 | 2 if paired_done => println!("  (with case {})", 3 - case),
                1 | 2 => {
                    paired_done = true;
                    case2_p99 = paired_case(&ctx, run).await
                }
                3 => case3_cold(&ctx, run).await,
                4 => case4_mix(&ctx, run).await,
                5 => case5_rss(&ctx, run).await,
                6 => case6_storm(&ctx, run, case2_p99).await,
                7 => case7_rotation(&ctx, run).await,
                8 => case8_outage(&ctx, run).await,
                9 => case9_faults(&ctx, run, case2_p99).await,
                10 => case10_dpop(&ctx, run).await,
                11 => case11_peers(&ctx, run).await,
                other => ctx.results.fail(&format!("no case {other}")),
            }
            println!("  ({:.1} s)", t.elapsed().as_secs_f64());
        }
    }
    ctx.results.finish(ctx.args.runs)
}
