//! Case 3 (issue 13): what a token the server has never seen costs it, in
//! server CPU per request, next to one raw RSA verification measured in
//! this process during the same run.
//!
//! One server, four kinds of window, in rounds whose order reverses every
//! round (a b c v, v c b a, ...), as cases 1 and 2 are measured
//! (`cases::paired_case`), so that all four see the same conditions on
//! the shared machine:
//!
//! - **a**: whoami with one repeated token, answered from the
//!   verified-token cache: the baseline (HTTP, the server function, a
//!   cache hit);
//! - **b**: whoami with never-seen valid tokens, each sent once (a slice
//!   of the minted pool per window): each one a full validation, its
//!   signature check and its insertion into the verified-token cache,
//!   which is full (10,000) after the first windows, so most insertions
//!   also make room;
//! - **c**: whoami with never-seen forged tokens, each sent once: a valid
//!   token's header and payload with another one's signature (right
//!   structure, known kid, wrong signature: `tokens::forge`), the path
//!   anyone can make the server take at will;
//! - **v**: no traffic; this process verifies one RS256 signature in a
//!   loop on one thread, with aws-lc-rs and the key parsed once: what
//!   `bare_verify/parsed` in `server/benches/validate.rs` measures, and
//!   the one step of a cold token that cannot be avoided.
//!
//! Every figure is CPU time, not wall time: the server's from
//! `/proc/<pid>/stat` before and after each of its windows (user + system,
//! every thread), the verify's from this thread's
//! `/proc/thread-self/schedstat`. So (b − a) ÷ v, a cold token's extra CPU
//! counted in raw verifies, does not depend on how much of the two cores
//! the client takes. The goal is ≤ 1.3 for (b − a) ÷ v and for
//! (c − a) ÷ v. Each window opens its 32 connections afresh; their set-up
//! is in every kind's figure.
//!
//! `openssl speed rsa2048`'s verify time is printed too, to compare with
//! earlier figures; no ratio depends on it. So are, per request of each
//! kind, the server's voluntary and involuntary context switches and
//! minor page faults, and the machine's rescheduling, function-call and
//! TLB-shootdown interrupts: how much switching, waking and paging each
//! kind brings.
//!
//! With `--pace-us N`, each connection sends its requests `N` µs apart
//! (open loop) instead of the next one on each answer, so every kind runs
//! at the same rate and neither side is saturated.
//!
//! With `--perf`, a fresh server then serves each kind alone, all of its
//! pool, while `perf record` samples it (`profile.rs`): the profiles of
//! BENCHMARKS.md's "Cold tokens (issue 13)".

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::HeaderValue;

use crate::cases::{boot, valid_req, Ctx, WORKERS};
use crate::driver::{drive, Class, Expect, Plan, Req, Stats, Stop};
use crate::profile::Recording;
use crate::rng::Rng;
use crate::server_process::{cpu_secs, stat_field};
use crate::tokens::{forge, Token};

/// The three kinds of traffic, in the order of the figures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Repeated,
    Cold,
    Forged,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Repeated, Kind::Cold, Kind::Forged];

    fn label(self) -> &'static str {
        match self {
            Kind::Repeated => "3a whoami, one repeated token",
            Kind::Cold => "3b whoami, never-seen valid tokens",
            Kind::Forged => "3c whoami, never-seen forged tokens",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Kind::Repeated => "3a",
            Kind::Cold => "3b",
            Kind::Forged => "3c",
        }
    }

    fn class(self) -> Class {
        match self {
            Kind::Forged => Class::Invalid,
            _ => Class::Valid,
        }
    }
}

/// The requests of case 3: the repeated token, and the pools of valid and
/// forged tokens that the windows take their slices of, in order.
struct Pools {
    repeated: Token,
    cold: Arc<Vec<Token>>,
    forged: Arc<Vec<HeaderValue>>,
}

impl Pools {
    fn new(fresh: &[Token]) -> Pools {
        // fresh[0] is the repeated token; the rest are never sent twice.
        let cold = fresh[1..].to_vec();
        let mut forged = forge(&cold);
        // `forge` gives one fewer; keep both pools the same length.
        let cold = Arc::new(cold[..forged.len()].to_vec());
        forged.truncate(cold.len());
        Pools {
            repeated: fresh[0].clone(),
            cold,
            forged: Arc::new(forged),
        }
    }

    /// `kind`'s requests from index `from` of its pool on.
    fn plan(&self, kind: Kind, from: usize) -> Arc<dyn Plan> {
        match kind {
            Kind::Repeated => {
                let token = self.repeated.clone();
                Arc::new(move |_: usize, _: &mut Rng| valid_req(&token))
            }
            Kind::Cold => {
                let (pool, next) = (self.cold.clone(), AtomicU64::new(from as u64));
                Arc::new(move |_: usize, _: &mut Rng| {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    valid_req(&pool[i % pool.len()])
                })
            }
            Kind::Forged => {
                let (pool, next) = (self.forged.clone(), AtomicU64::new(from as u64));
                Arc::new(move |_: usize, _: &mut Rng| {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    Req {
                        path: "/api/whoami",
                        auth: Some(pool[i % pool.len()].clone()),
                        dpop: None,
                        expect: Expect::InvalidToken,
                        class: Class::Invalid,
                    }
                })
            }
        }
    }
}

/// One RS256 verification as the server makes it: aws-lc-rs, key parsed
/// once, a valid signature over a token's signing input.
#[derive(Clone)]
struct RawVerify {
    key: Arc<ParsedPublicKey>,
    message: Arc<[u8]>,
    signature: Arc<[u8]>,
}

impl RawVerify {
    fn new(ctx: &Ctx, token: &Token) -> RawVerify {
        let key = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, ctx.tokens.k1.public_key_der())
            .expect("k1's public key");
        let jws = token
            .header
            .to_str()
            .expect("ascii")
            .trim_start_matches("Bearer ");
        let (input, sig) = jws.rsplit_once('.').expect("jws");
        let raw = RawVerify {
            key: Arc::new(key),
            message: input.as_bytes().into(),
            signature: URL_SAFE_NO_PAD.decode(sig).expect("b64").into(),
        };
        assert!(raw.verify(), "the raw verify must succeed to mean anything");
        raw
    }

    fn verify(&self) -> bool {
        self.key.verify_sig(&self.message, &self.signature).is_ok()
    }

    /// Verifies in a loop on one blocking thread for about `wall`; returns
    /// (verifications, that thread's CPU seconds).
    async fn window(&self, wall: Duration) -> (u64, f64) {
        let raw = self.clone();
        tokio::task::spawn_blocking(move || {
            let t0 = Instant::now();
            let cpu0 = thread_cpu_secs();
            let mut n = 0u64;
            while t0.elapsed() < wall {
                for _ in 0..64 {
                    assert!(raw.verify());
                }
                n += 64;
            }
            (n, thread_cpu_secs() - cpu0)
        })
        .await
        .expect("verify thread")
    }
}

/// Voluntary and involuntary context switches of every thread of `pid`.
fn context_switches(pid: u32) -> [u64; 2] {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return [0, 0];
    };
    tasks.flatten().fold([0, 0], |[v, n], task| {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let [tv, tn] = switches_in(&status);
        [v + tv, n + tn]
    })
}

/// The voluntary and involuntary context switches a
/// `/proc/<pid>/task/<tid>/status` counts.
fn switches_in(status: &str) -> [u64; 2] {
    let count = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    [
        count("voluntary_ctxt_switches"),
        count("nonvoluntary_ctxt_switches"),
    ]
}

/// Minor page faults of `pid` so far (`/proc/<pid>/stat`, field 10).
fn minor_faults(pid: u32) -> u64 {
    stat_field(pid, 10)
}

/// Rescheduling, function-call and TLB-shootdown interrupts of all CPUs
/// so far: what one core asks of another.
fn ipi_count() -> u64 {
    ipis_in(&std::fs::read_to_string("/proc/interrupts").unwrap_or_default())
}

/// The `RES`, `CAL` and `TLB` rows of a `/proc/interrupts`, summed over
/// CPUs.
fn ipis_in(interrupts: &str) -> u64 {
    interrupts
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.trim_start().split_once(':')?;
            matches!(name, "RES" | "CAL" | "TLB").then(|| {
                rest.split_whitespace()
                    .map_while(|v| v.parse::<u64>().ok())
                    .sum::<u64>()
            })
        })
        .sum()
}

/// CPU seconds the calling thread has used, to the nanosecond
/// (`/proc/thread-self/schedstat`: time on a CPU, waiting, timeslices).
pub fn thread_cpu_secs() -> f64 {
    crate::server_process::schedstat_secs("/proc/thread-self/schedstat")
}

/// Case 3; see the module doc.
pub async fn case3_cold(ctx: &Ctx, run: usize) {
    let openssl_secs = if ctx.args.short { 1 } else { 3 };
    let openssl = tokio::task::spawn_blocking(move || openssl_verify_per_sec(openssl_secs))
        .await
        .ok()
        .flatten()
        .unwrap_or(f64::NAN);
    ctx.results.add(
        "3 openssl speed rsa2048: time per verify (1 core, for comparison)",
        1e6 / openssl,
        "µs",
        "",
    );
    let Some(server) = boot(ctx, &format!("case3-run{run}")).await else {
        return;
    };
    let pools = Pools::new(&ctx.tokens.fresh);
    let raw = RawVerify::new(ctx, &pools.repeated);
    let rounds: usize = if ctx.args.short { 4 } else { 8 };
    let per_window = pools.cold.len() / rounds;
    let repeated_window = if ctx.args.short {
        Duration::from_millis(100)
    } else {
        Duration::from_millis(250)
    };
    let verify_window = Duration::from_millis(100);

    // Warm-up: connections, the repeated token's one RSA check, the
    // verify loop's code and data.
    drive(
        server.addr,
        WORKERS,
        pools.plan(Kind::Repeated, 0),
        Stop::after(repeated_window),
        None,
        30,
    )
    .await;
    raw.window(verify_window / 2).await;

    let pace = ctx.args.pace_us.map(Duration::from_micros);
    let mut stats: [Stats; 3] = Default::default();
    let mut cpu = [0.0f64; 3];
    // Per window: the server's context switches (voluntary, involuntary),
    // the machine's IPIs, and the server's minor page faults.
    let (mut switches, mut ipis, mut faults) = ([[0u64; 2]; 3], [0u64; 3], [0u64; 3]);
    let (mut verifies, mut verify_cpu) = (0u64, 0.0f64);
    // 0..3 are the kinds, 3 the raw verify.
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [0, 1, 2, 3]
        } else {
            [3, 2, 1, 0]
        };
        for w in order {
            if w == 3 {
                let (n, secs) = raw.window(verify_window).await;
                verifies += n;
                verify_cpu += secs;
                continue;
            }
            let kind = Kind::ALL[w];
            let stop = match kind {
                Kind::Repeated => Stop::after(repeated_window),
                _ => Stop::after_count(per_window as u64, Duration::from_secs(60)),
            };
            let plan = pools.plan(kind, round * per_window);
            let (switches0, ipis0) = (context_switches(server.pid()), ipi_count());
            let faults0 = minor_faults(server.pid());
            let cpu0 = cpu_secs(server.pid());
            let window = drive(server.addr, WORKERS, plan, stop, pace, 31 + round as u64).await;
            cpu[w] += cpu_secs(server.pid()) - cpu0;
            let switched = context_switches(server.pid());
            for (total, (after, before)) in
                switches[w].iter_mut().zip(switched.iter().zip(switches0))
            {
                *total += after.saturating_sub(before);
            }
            ipis[w] += ipi_count().saturating_sub(ipis0);
            faults[w] += minor_faults(server.pid()).saturating_sub(faults0);
            stats[w].elapsed += window.elapsed;
            stats[w].merge(window);
        }
    }

    let r = &ctx.results;
    let mut per_request = [0.0f64; 3];
    for kind in Kind::ALL {
        let w = kind as usize;
        per_request[w] =
            r.report_cpu_per_request(kind.label(), kind.class(), &mut stats[w], cpu[w]);
        let n = stats[w].count(kind.class()).max(1) as f64;
        for (which, count) in ["voluntary", "involuntary"].iter().zip(switches[w]) {
            r.add(
                &format!(
                    "{}: server {which} context switches per request",
                    kind.label()
                ),
                count as f64 / n,
                "",
                "",
            );
        }
        r.add(
            &format!("{}: server minor page faults per request", kind.label()),
            faults[w] as f64 / n,
            "",
            "",
        );
        r.add(
            &format!(
                "{}: IPIs (RES + CAL + TLB, whole machine) per request",
                kind.label()
            ),
            ipis[w] as f64 / n,
            "",
            "",
        );
    }
    let verify_us = 1e6 * verify_cpu / verifies.max(1) as f64;
    r.add(
        "3v raw RSA-2048 verify in the harness (aws-lc-rs, parsed key): CPU per verify",
        verify_us,
        "µs",
        "",
    );
    let [a, b, c] = per_request;
    r.add(
        "3 (b − a) ÷ v: a never-seen valid token's extra CPU, in raw verifies",
        (b - a) / verify_us,
        "×",
        "≤ 1.3",
    );
    r.add(
        "3 (c − a) ÷ v: a forged token's extra CPU, in raw verifies",
        (c - a) / verify_us,
        "×",
        "≤ 1.3",
    );
    for kind in Kind::ALL {
        r.check_correct(kind.tag(), &stats[kind as usize]);
    }
    drop(server);

    if ctx.args.perf {
        profile_each_kind(ctx, run, &pools).await;
    }
}

/// `--perf`: a fresh server (so every pool token is cold again) serves
/// each kind alone, all of its pool, while `perf record` samples it.
async fn profile_each_kind(ctx: &Ctx, run: usize, pools: &Pools) {
    let Some(server) = boot(ctx, &format!("case3-perf-run{run}")).await else {
        return;
    };
    for kind in Kind::ALL {
        let out = ctx
            .launcher
            .work
            .join(format!("perf-{}-run{run}.data", kind.tag()));
        let recording = match Recording::start(server.pid(), &out) {
            Ok(rec) => rec,
            Err(e) => {
                ctx.results.fail(&format!("--perf: {e}"));
                return;
            }
        };
        let n = pools.cold.len() as u64;
        let stop = Stop::after_count(n, Duration::from_secs(120));
        let cpu0 = cpu_secs(server.pid());
        let stats = drive(server.addr, WORKERS, pools.plan(kind, 0), stop, None, 40).await;
        let cpu = cpu_secs(server.pid()) - cpu0;
        recording.stop();
        println!(
            "    {}: {} requests under perf, {:.1} µs server CPU each (perf's overhead included): {}",
            kind.tag(),
            stats.total(),
            1e6 * cpu / stats.total().max(1) as f64,
            out.display()
        );
        ctx.results
            .check_correct(&format!("{} under perf", kind.tag()), &stats);
    }
    drop(server);
}

/// `openssl speed rsa2048` verify/s on one core.
fn openssl_verify_per_sec(secs: u32) -> Option<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-mr", "-seconds", &secs.to_string(), "rsa2048"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    // Machine-readable result line: +F2:<n>:2048:<sign>:<verify>. OpenSSL
    // 3 gives operations per second there, 1.1 gave seconds per operation.
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("+F2:"))?;
    let verify: f64 = line.split(':').nth(4)?.trim().parse().ok()?;
    Some(if verify < 1.0 { 1.0 / verify } else { verify })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_the_rescheduling_function_call_and_tlb_rows() {
        let interrupts = "           CPU0       CPU1
  0:         38          0   IO-APIC   2-edge      timer
NMI:          0          0   Non-maskable interrupts
LOC:    9021345    8812233   Local timer interrupts
RES:     120345     118002   Rescheduling interrupts
CAL:       5001       4999   Function call interrupts
TLB:        100        200   TLB shootdowns
";
        assert_eq!(
            ipis_in(interrupts),
            120_345 + 118_002 + 5_001 + 4_999 + 100 + 200
        );
        assert_eq!(ipis_in(""), 0);
    }

    #[test]
    fn counts_both_kinds_of_context_switch() {
        let status = "Name:\ttokio-runtime-w
State:\tS (sleeping)
voluntary_ctxt_switches:\t1200
nonvoluntary_ctxt_switches:\t34
";
        assert_eq!(switches_in(status), [1_200, 34]);
        assert_eq!(switches_in("Name:\tx\n"), [0, 0]);
    }
}
