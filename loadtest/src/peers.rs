//! Case 11 (issue 28): this server next to the peers a user would pick
//! instead, in server CPU per `POST /api/whoami`: fastify with jose, jose
//! behind an LRU cache, and Okta's own Node verifier (`loadtest/peers/`,
//! npm packages pinned by its lock file and installed here with `npm ci`
//! when missing), all against this harness's issuer and checked the same
//! way, answer by answer.
//!
//! The four servers run side by side; each window drives one of them with
//! one kind of request while the others are idle, in rounds whose order
//! reverses every round, so every server sees the same conditions:
//!
//! - **repeated**: one valid token, over and over (a cache hit where
//!   there is a cache);
//! - **missing**: no token (401);
//! - **never-seen**: valid tokens each sent once, a slice of the minted
//!   pool of its own for each server, so each is a full verification;
//! - **DPoP**: one DPoP-bound token (`cnf.jkt`), over and over, each
//!   request with a fresh proof (`jti`, `htm`, `htu`, `iat`, `ath`)
//!   minted before its window, as case 10 sends them: the server and the
//!   jose peers verify every proof's ES256 signature by its embedded key
//!   (jose's `EmbeddedJWK`), its claims and `jti` against a replay cache,
//!   and the token as they do a Bearer one (so from its cache where there
//!   is one). Okta's verifier has no DPoP and sits this kind out. Before
//!   the windows, each of them must refuse a replayed proof, a proof made
//!   for another server and the bound token sent as Bearer.
//!
//! `--connections N` sets the keep-alive connections of every window (32
//! by default, as the other cases), to see whether a server's cost per
//! request depends on how many requests each turn of its event loop
//! finds waiting (at 256, Node's barely moved: BENCHMARKS.md).
//!
//! Each server's CPU comes from `/proc/<pid>` around its windows (every
//! thread), so the ratios do not depend on how much CPU the client takes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use crate::cases::{boot, valid_req, Ctx};
use crate::dpop::{mint_proofs, DpopKey, Proofs, PROOFS_PER_WINDOW};
use crate::driver::{drive, Class, Conn, Expect, Plan, Req, Stats, Stop};
use crate::rng::Rng;
use crate::server_process::cpu_secs;
use crate::tokens::{bound_token, unix_now, Token};
use crate::{AUDIENCE, CLIENT_ID};

const PEERS: [&str; 3] = ["jose", "jose-lru", "okta"];
const ROUNDS: usize = 4;

/// A peer's Node process, killed when dropped.
struct Peer {
    child: Child,
    port: u16,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

/// `npm ci` in `loadtest/peers` unless its packages are already there.
fn install() -> Result<(), String> {
    let dir = peers_dir();
    if dir.join("node_modules/fastify").is_dir() && dir.join("node_modules/jose").is_dir() {
        return Ok(());
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .map_err(|e| {
            format!(
                "npm ci in {}: {e} (the peers need Node.js and npm)",
                dir.display()
            )
        })?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("npm ci in {} failed ({status})", dir.display()))
}

async fn start_peer(name: &str, issuer: &str) -> Result<Peer, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = Command::new("node")
        .arg("server.mjs")
        .current_dir(peers_dir())
        .env("PEER", name)
        .env("ISSUER", issuer)
        .env("AUDIENCE", AUDIENCE)
        .env("CLIENT_ID", CLIENT_ID)
        .env("PORT", port.to_string())
        .env("ORIGIN", format!("http://localhost:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("node server.mjs ({name}): {e}"))?;
    let peer = Peer { child, port };
    let until = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > until {
            return Err(format!("the {name} peer did not listen within 20 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(peer)
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Repeated,
    Missing,
    NeverSeen,
    Dpop,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Repeated, Kind::Missing, Kind::NeverSeen, Kind::Dpop];

    fn label(self) -> &'static str {
        match self {
            Kind::Repeated => "repeated token",
            Kind::Missing => "no token (401)",
            Kind::NeverSeen => "never-seen token",
            Kind::Dpop => "DPoP, a fresh proof each",
        }
    }

    fn class(self) -> Class {
        match self {
            Kind::Missing => Class::Invalid,
            _ => Class::Valid,
        }
    }
}

/// Each token of `pool` once, in order.
struct Once {
    pool: Vec<Token>,
    next: AtomicUsize,
}

impl Plan for Once {
    fn next(&self, _: usize, _: &mut Rng) -> Req {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        valid_req(&self.pool[i % self.pool.len()])
    }
}

/// Whether `server` (0 is this one, then [`PEERS`]) takes DPoP.
fn takes_dpop(server: usize) -> bool {
    server == 0 || PEERS[server - 1] != "okta"
}

/// Case 11; see the module doc.
pub async fn case11_peers(ctx: &Ctx, run: usize) {
    if let Err(e) = install() {
        ctx.results.fail(&e);
        return;
    }
    let Some(ours) = boot(ctx, &format!("case11-run{run}")).await else {
        return;
    };
    let mut peers = Vec::new();
    for name in PEERS {
        match start_peer(name, &ctx.tokens.issuer).await {
            Ok(peer) => peers.push(peer),
            Err(e) => {
                ctx.results.fail(&e);
                return;
            }
        }
    }
    let mut targets = vec![("this server", ours.addr, ours.pid())];
    for (name, peer) in PEERS.iter().zip(&peers) {
        let addr = ([127, 0, 0, 1], peer.port).into();
        targets.push((name, addr, peer.child.id()));
    }
    let connections = ctx.args.connections;

    // The never-seen tokens: a slice of the pool per server and round.
    let pool = &ctx.tokens.fresh[1..];
    // Most of the pool for the windows, the rest for the warm-up.
    let per_window = pool.len() * 9 / 10 / (targets.len() * ROUNDS);
    let repeated = ctx.tokens.fresh[0].clone();
    // The DPoP windows' key and token; each server's proofs name its own
    // origin in `htu`, and every window gets proofs never sent before.
    let key = Arc::new(DpopKey::generate());
    let dpop_sub: Arc<str> = Arc::from("dpop-user");
    let bound = bound_token(&ctx.tokens, &dpop_sub, &key.jkt);
    let ath = URL_SAFE_NO_PAD.encode(digest(&SHA256, bound.as_bytes()));
    let dpop_authorization =
        HeaderValue::from_maybe_shared(Bytes::from(format!("DPoP {bound}"))).expect("b64token");
    let mut minted = 0usize;
    let mut proofs = |addr: std::net::SocketAddr| {
        let from = minted;
        minted += PROOFS_PER_WINDOW;
        let htu = format!("http://localhost:{}/api/whoami", addr.port());
        mint_proofs(key.clone(), htu, ath.clone(), from)
    };
    let dpop_plan = |pool: Vec<HeaderValue>| -> Arc<dyn Plan> {
        Arc::new(Proofs {
            authorization: dpop_authorization.clone(),
            sub: dpop_sub.clone(),
            pool,
            next: AtomicUsize::new(0),
        })
    };
    let plan = |kind: Kind, server: usize, round: usize| -> (Arc<dyn Plan>, Arc<Stop>) {
        let wall = ctx.args.secs(1);
        match kind {
            Kind::Repeated => {
                let token = repeated.clone();
                let plan: Arc<dyn Plan> = Arc::new(move |_: usize, _: &mut Rng| valid_req(&token));
                (plan, Stop::after(wall))
            }
            Kind::Missing => {
                let plan: Arc<dyn Plan> = Arc::new(|_: usize, _: &mut Rng| Req {
                    path: "/api/whoami",
                    auth: None,
                    dpop: None,
                    expect: Expect::MissingToken,
                    class: Class::Invalid,
                });
                (plan, Stop::after(wall))
            }
            Kind::NeverSeen => {
                let from = (server * ROUNDS + round) * per_window;
                let plan: Arc<dyn Plan> = Arc::new(Once {
                    pool: pool[from..from + per_window].to_vec(),
                    next: AtomicUsize::new(0),
                });
                (
                    plan,
                    Stop::after_count(per_window as u64, Duration::from_secs(60)),
                )
            }
            Kind::Dpop => unreachable!("DPoP plans carry their proofs"),
        }
    };

    // A warm-up of every server with every kind (Node compiles its hot
    // paths as they run): connections, first allocations, the JIT, the
    // repeated token's one verification, the JWKS fetch. Its never-seen
    // tokens are the pool's last slice, which no window sends.
    let spare = &pool[targets.len() * ROUNDS * per_window..];
    for (server, (_, addr, _)) in targets.iter().enumerate() {
        for kind in Kind::ALL {
            let plan: Arc<dyn Plan> = match kind {
                Kind::NeverSeen if spare.is_empty() => continue,
                Kind::NeverSeen => Arc::new(Once {
                    pool: spare.to_vec(),
                    next: AtomicUsize::new(0),
                }),
                Kind::Dpop if !takes_dpop(server) => continue,
                Kind::Dpop => dpop_plan(proofs(*addr).await),
                _ => plan(kind, 0, 0).0,
            };
            let stop = match kind {
                Kind::NeverSeen => Stop::after_count(spare.len() as u64, ctx.args.secs(2)),
                _ => Stop::after(ctx.args.secs(2)),
            };
            drive(*addr, connections, plan, stop, None, 1).await;
        }
    }

    // Each server that takes DPoP must refuse what a careful one refuses,
    // or its figures would be those of a verifier that checks less.
    for (server, (name, addr, _)) in targets.iter().enumerate() {
        if takes_dpop(server) {
            let other = targets[(server + 1) % targets.len()].1;
            if let Err(e) = check_refusals(*addr, other, &key, &bound, &ath).await {
                ctx.results.fail(&format!("11 {name}: {e}"));
            }
        }
    }

    let n = targets.len();
    let kinds = Kind::ALL.len();
    let mut stats: Vec<Vec<Stats>> = (0..n)
        .map(|_| Kind::ALL.map(|_| Stats::default()).into())
        .collect();
    let mut cpu = vec![vec![0.0f64; kinds]; n];
    // The main thread's share: Node runs JavaScript on one thread, and
    // V8's garbage collector and compiler on others.
    let mut main_cpu = vec![vec![0.0f64; kinds]; n];
    for round in 0..ROUNDS {
        let mut order: Vec<usize> = (0..n).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for (k, kind) in Kind::ALL.into_iter().enumerate() {
            for &server in &order {
                let (_, addr, pid) = targets[server];
                let (plan, stop) = match kind {
                    Kind::Dpop if !takes_dpop(server) => continue,
                    // Minted before the window opens, on the harness's side.
                    Kind::Dpop => (dpop_plan(proofs(addr).await), Stop::after(ctx.args.secs(1))),
                    _ => plan(kind, server, round),
                };
                let (cpu0, main0) = (cpu_secs(pid), main_thread_cpu_secs(pid));
                let window = drive(addr, connections, plan, stop, None, 2 + round as u64).await;
                cpu[server][k] += cpu_secs(pid) - cpu0;
                main_cpu[server][k] += main_thread_cpu_secs(pid) - main0;
                stats[server][k].elapsed += window.elapsed;
                stats[server][k].merge(window);
            }
        }
    }

    let r = &ctx.results;
    let mut per_request = vec![vec![f64::NAN; kinds]; n];
    for (server, (name, _, _)) in targets.iter().enumerate() {
        for (k, kind) in Kind::ALL.into_iter().enumerate() {
            if kind == Kind::Dpop && !takes_dpop(server) {
                continue;
            }
            let count = stats[server][k].count(kind.class()).max(1) as f64;
            per_request[server][k] = r.report_cpu_per_request(
                &format!("11 {name}, {}", kind.label()),
                kind.class(),
                &mut stats[server][k],
                cpu[server][k],
            );
            r.add(
                &format!("11 {name}, {}: of which the main thread", kind.label()),
                1e6 * main_cpu[server][k] / count,
                "µs",
                "",
            );
        }
    }
    for (server, (name, _, _)) in targets.iter().enumerate().skip(1) {
        for (k, kind) in Kind::ALL.into_iter().enumerate() {
            if kind == Kind::Dpop && !takes_dpop(server) {
                continue;
            }
            r.add(
                &format!("11 this server ÷ {name}, {}", kind.label()),
                per_request[0][k] / per_request[server][k],
                "×",
                "",
            );
        }
    }
    drop(peers);
    drop(ours);
}

/// Sends `addr` a valid DPoP request, then the same proof again (a
/// replay), a proof made for `other` (its `htu`), and the bound token as
/// a Bearer one: the first must be answered, the others refused with 401.
async fn check_refusals(
    addr: std::net::SocketAddr,
    other: std::net::SocketAddr,
    key: &DpopKey,
    bound: &str,
    ath: &str,
) -> Result<(), String> {
    let htu = |addr: std::net::SocketAddr| format!("http://localhost:{}/api/whoami", addr.port());
    let header = |value: String| HeaderValue::from_str(&value).expect("ascii");
    let dpop = header(format!("DPoP {bound}"));
    let jti = format!("check-{}", addr.port());
    let (proof, _, _) = key.proof(&htu(addr), ath, &jti, unix_now());
    let (elsewhere, _, _) = key.proof(&htu(other), ath, &format!("{jti}-other"), unix_now());
    let mut conn = Conn::open(addr).await?;
    let tries = [
        (
            "a valid proof",
            Some(&dpop),
            Some(header(proof.clone())),
            StatusCode::OK,
        ),
        (
            "a replayed proof",
            Some(&dpop),
            Some(header(proof)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "a proof for another server",
            Some(&dpop),
            Some(header(elsewhere)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "a bound token as Bearer",
            Some(&header(format!("Bearer {bound}"))),
            None,
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (what, auth, proof, expected) in tries {
        let (status, _, _) = conn.send("/api/whoami", auth, proof.as_ref()).await?;
        if status != expected {
            return Err(format!("{what} was answered {status}, not {expected}"));
        }
    }
    Ok(())
}

/// The CPU seconds of `pid`'s main thread alone.
fn main_thread_cpu_secs(pid: u32) -> f64 {
    crate::server_process::schedstat_secs(&format!("/proc/{pid}/task/{pid}/schedstat"))
}
