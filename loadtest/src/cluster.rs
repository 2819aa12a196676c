//! Scale-out behind nginx (issue 14): `load --cluster 1,2,4` runs these
//! cases against `deploy/run-cluster.sh N`, which starts N release
//! instances on 127.0.0.1:3500+i (metrics on 3600+i) behind nginx on
//! 127.0.0.1:3480, every instance trusting the harness's issuer (the
//! script gets `ISSUER` from here). The script restarts an instance that
//! dies, 3 s later, and nginx adds `X-Upstream-Addr` to every answer
//! (`EXPOSE_UPSTREAM=1`), so each answer is known by the instance that
//! gave it.
//!
//! - **A, mix**: the 90/10 valid/invalid mix of case 4 through nginx for
//!   10 s; every answer checked; requests per instance from each
//!   instance's own `/metrics`.
//! - **B, rotation**: the issuer publishes a second key 3 s into a 9 s
//!   load, and tokens of it start to arrive; no valid token may be refused
//!   anywhere, and the issuer must see exactly N JWKS fetches (one per
//!   instance, confirmed by each instance's `jwks_fetches_total`).
//! - **C, kill**: valid traffic for 15 s; 3 s in, instance 0 gets SIGKILL.
//!   Failed requests (transport errors, 5xx, wrong answers), when the last
//!   answer from the dead instance came, when it was started again, and
//!   when nginx sent it traffic again.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cases::plan_rotation;
use crate::driver::{drive, Class, Conn, Expect, Plan, Req, Stop};
use crate::issuer::{Fault, Issuer};
use crate::report::Results;
use crate::rng::Rng;
use crate::server_process::CLEARED_SETTINGS;
use crate::tokens::{Token, Tokens};
use crate::CLIENT_ID;

const NGINX_PORT: u16 = 3480;
const BASE_PORT: u16 = 3500;
const METRICS_BASE_PORT: u16 = 3600;
const WORKERS: usize = 32;
/// How long the script waits before starting a dead instance again.
const RESTART_DELAY_SECS: u64 = 3;

/// How to run the cluster.
pub struct ClusterArgs {
    pub sizes: Vec<usize>,
    pub script: PathBuf,
    pub server: PathBuf,
    /// Leave `non_idempotent` out of nginx's retries (NGINX_RETRY_POST=0).
    pub no_retry_post: bool,
}

/// `deploy/run-cluster.sh N`, running until dropped (SIGTERM: it stops the
/// instances and nginx).
struct Cluster {
    child: Child,
    n: usize,
    work: PathBuf,
}

impl Cluster {
    fn start(args: &ClusterArgs, n: usize, issuer: &str, work: &Path) -> Result<Cluster, String> {
        let _ = std::fs::create_dir_all(work);
        let log = std::fs::File::create(work.join("run-cluster.log")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&args.script);
        cmd.arg(n.to_string())
            .env("ISSUER", issuer)
            .env("CLIENT_ID", CLIENT_ID)
            .env("SERVER", &args.server)
            .env("WORK", work)
            .env("NGINX_PORT", NGINX_PORT.to_string())
            .env("BASE_PORT", BASE_PORT.to_string())
            .env("METRICS_BASE_PORT", METRICS_BASE_PORT.to_string())
            .env("RESTART_DELAY", RESTART_DELAY_SECS.to_string())
            .env("EXPOSE_UPSTREAM", "1")
            .env(
                "NGINX_RETRY_POST",
                if args.no_retry_post { "0" } else { "1" },
            )
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        // The script sets each instance's METRICS_ADDR itself.
        for var in CLEARED_SETTINGS.into_iter().chain(["METRICS_ADDR"]) {
            cmd.env_remove(var);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", args.script.display()))?;
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let cluster = Cluster {
            child,
            n,
            work: work.to_path_buf(),
        };
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) if line.starts_with("cluster ready") => Ok(cluster),
            other => Err(format!(
                "run-cluster.sh did not get ready ({other:?}); see {}",
                work.join("run-cluster.log").display()
            )),
        }
    }

    fn nginx(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], NGINX_PORT))
    }

    fn instance_pid(&self, i: usize) -> Option<u32> {
        std::fs::read_to_string(self.work.join(format!("instance-{i}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Every instance's metrics, by instance.
    async fn metrics(&self) -> Vec<BTreeMap<String, f64>> {
        let mut all = Vec::with_capacity(self.n);
        for i in 0..self.n {
            all.push(
                scrape(METRICS_BASE_PORT + i as u16)
                    .await
                    .unwrap_or_default(),
            );
        }
        all
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /metrics` of the instance whose metrics listen on `port`.
async fn scrape(port: u16) -> Option<BTreeMap<String, f64>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut text))
        .await
        .ok()?
        .ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    Some(
        body.lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_string(), value.parse().ok()?))
            })
            .collect(),
    )
}

fn delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>, series: &str) -> f64 {
    after.get(series).copied().unwrap_or(f64::NAN) - before.get(series).copied().unwrap_or(0.0)
}

const UNKNOWN_KID_FETCHES: &str = "jwks_fetches_total{cause=\"unknown_kid\",result=\"ok\"}";
const WHOAMI_COUNT: &str = "http_request_duration_seconds_count{route=\"whoami\"}";

fn valid_req(t: &Token) -> Req {
    Req {
        path: "/api/whoami",
        auth: Some(t.header.clone()),
        dpop: None,
        expect: Expect::Valid(t.sub.clone()),
        class: Class::Valid,
    }
}

/// 90 % valid (from the first 2,000 fresh tokens), 10 % invalid.
fn plan_mix(tokens: &Tokens) -> Arc<dyn Plan> {
    let valid: Arc<Vec<Token>> = Arc::new(tokens.fresh[..2_000].to_vec());
    let bad: Arc<Vec<HeaderValue>> = Arc::new(
        [
            &tokens.expired,
            &tokens.bad_sig,
            &tokens.wrong_aud,
            &tokens.garbage,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect(),
    );
    Arc::new(move |_: usize, rng: &mut Rng| {
        let r = rng.next();
        if r.is_multiple_of(10) {
            Req {
                path: "/api/whoami",
                auth: Some(bad[(rng.next() % bad.len() as u64) as usize].clone()),
                dpop: None,
                expect: Expect::InvalidToken,
                class: Class::Invalid,
            }
        } else {
            valid_req(&valid[(r / 10 % valid.len() as u64) as usize])
        }
    })
}

/// Runs cases A, B and C against clusters of each size, `runs` times.
pub async fn run(
    args: &ClusterArgs,
    issuer: &Issuer,
    tokens: &Tokens,
    results: &Results,
    runs: usize,
    work: &Path,
) {
    for run in 1..=runs {
        for &n in &args.sizes {
            println!("\n=== cluster of {n}, run {run} of {runs} ===");
            issuer.set_fault(Fault::None);
            issuer.publish(&[&tokens.k1]);
            let before_start = issuer.fetches();
            let cluster = match Cluster::start(
                args,
                n,
                issuer.issuer(),
                &work.join(format!("cluster-{n}")),
            ) {
                Ok(cluster) => cluster,
                Err(e) => {
                    results.fail(&format!("N={n}: {e}"));
                    continue;
                }
            };
            results.add(
                &format!("N={n} JWKS fetches at start-up"),
                (issuer.fetches() - before_start) as f64,
                "",
                &format!("{n} (one per instance)"),
            );
            case_a(&cluster, tokens, results).await;
            case_b(&cluster, issuer, tokens, results).await;
            case_c(&cluster, tokens, results).await;
            drop(cluster);
        }
    }
}

async fn case_a(cluster: &Cluster, tokens: &Tokens, results: &Results) {
    let n = cluster.n;
    println!("case A (mix, N={n}):");
    let before = cluster.metrics().await;
    let stats = drive(
        cluster.nginx(),
        WORKERS,
        plan_mix(tokens),
        Stop::after(Duration::from_secs(10)),
        None,
        0xA,
    )
    .await;
    let after = cluster.metrics().await;
    let label = format!("N={n} A mix");
    results.add(
        &format!("{label}: requests checked"),
        stats.total() as f64,
        "",
        "",
    );
    results.add(
        &format!("{label}: throughput through nginx"),
        stats.total() as f64 / stats.elapsed.as_secs_f64(),
        "req/s",
        "2-core machine: see BENCHMARKS.md",
    );
    let shares: Vec<String> = (0..n)
        .map(|i| {
            let served = delta(&after[i], &before[i], WHOAMI_COUNT);
            format!("{:.0} %", 100.0 * served / stats.total() as f64)
        })
        .collect();
    println!(
        "    requests per instance (from their /metrics): {}",
        shares.join(" / ")
    );
    results.check_correct(&label, &stats);
}

async fn case_b(cluster: &Cluster, issuer: &Issuer, tokens: &Tokens, results: &Results) {
    let n = cluster.n;
    println!("case B (rotation, N={n}):");
    let before = cluster.metrics().await;
    let fetches_before = issuer.fetches();
    let rotated = Arc::new(AtomicU8::new(0));
    let plan = plan_rotation(tokens, rotated.clone());
    let load = tokio::spawn(drive(
        cluster.nginx(),
        WORKERS,
        plan,
        Stop::after(Duration::from_secs(9)),
        None,
        0xB,
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    issuer.publish(&[&tokens.k1, &tokens.k2]);
    rotated.store(1, Ordering::SeqCst);
    let stats = load.await.expect("load task");
    let fetches = issuer.fetches() - fetches_before;
    let after = cluster.metrics().await;
    let label = format!("N={n} B rotation");
    results.add(&format!("{label}: requests"), stats.total() as f64, "", "");
    results.add(
        &format!("{label}: valid requests refused"),
        stats.wrong as f64,
        "",
        "0",
    );
    results.add(
        &format!("{label}: JWKS fetches seen by the issuer"),
        fetches as f64,
        "",
        &format!("{n} (one per instance)"),
    );
    let per_instance: Vec<f64> = (0..n)
        .map(|i| delta(&after[i], &before[i], UNKNOWN_KID_FETCHES))
        .collect();
    println!("    unknown-kid JWKS fetches per instance (their /metrics): {per_instance:?}");
    if fetches != n as u64 || per_instance.iter().any(|f| *f != 1.0) {
        results.fail(&format!(
            "{label}: {fetches} fetches, per instance {per_instance:?}"
        ));
    }
    results.check_correct(&label, &stats);
}

/// One request's answer in case C.
struct Seen {
    at: Duration,
    /// The instance that answered (the last address nginx tried).
    instance: Option<usize>,
    /// nginx tried more than one instance.
    retried: bool,
    ok: bool,
    /// The status, if an answer came.
    status: Option<u16>,
}

async fn case_c(cluster: &Cluster, tokens: &Tokens, results: &Results) {
    let n = cluster.n;
    println!("case C (kill -9 instance 0 under load, N={n}):");
    let Some(victim) = cluster.instance_pid(0) else {
        results.fail("case C: no pid for instance 0");
        return;
    };
    let start = Instant::now();
    let stop_at = start + Duration::from_secs(15);
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let pool: Arc<Vec<Token>> = Arc::new(tokens.fresh[..1_000].to_vec());
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (seen, pool) = (seen.clone(), pool.clone());
        let addr = cluster.nginx();
        workers.push(tokio::spawn(async move {
            let mut rng = Rng::new(0xC0 + w as u64);
            let mut conn: Option<Conn> = None;
            let mut mine = Vec::new();
            while Instant::now() < stop_at {
                let token = &pool[rng.below(pool.len() as u64) as usize];
                if conn.is_none() {
                    conn = Conn::open(addr).await.ok();
                }
                let Some(c) = conn.as_mut() else {
                    mine.push(Seen {
                        at: start.elapsed(),
                        instance: None,
                        retried: false,
                        ok: false,
                        status: None,
                    });
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let answer = tokio::time::timeout(
                    Duration::from_secs(10),
                    c.send("/api/whoami", Some(&token.header), None),
                )
                .await;
                let at = start.elapsed();
                match answer {
                    Ok(Ok((status, headers, body))) => {
                        let upstream = headers
                            .get("x-upstream-addr")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        let last = upstream.rsplit(", ").next().unwrap_or("");
                        let instance = last
                            .rsplit_once(':')
                            .and_then(|(_, p)| p.parse::<u16>().ok())
                            .and_then(|p| p.checked_sub(BASE_PORT))
                            .map(usize::from);
                        mine.push(Seen {
                            at,
                            instance,
                            retried: upstream.contains(','),
                            ok: Expect::Valid(token.sub.clone()).check(status, &headers, &body),
                            status: Some(status.as_u16()),
                        });
                    }
                    _ => {
                        mine.push(Seen {
                            at,
                            instance: None,
                            retried: false,
                            ok: false,
                            status: None,
                        });
                        conn = None;
                    }
                }
            }
            seen.lock().expect("seen").extend(mine);
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed_at = start.elapsed();
    let _ = Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status();
    // When the script has started it again.
    let mut restarted_at = None;
    while Instant::now() < stop_at {
        if cluster.instance_pid(0).is_some_and(|pid| pid != victim) {
            restarted_at = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for w in workers {
        let _ = w.await;
    }
    let seen = std::mem::take(&mut *seen.lock().expect("seen"));
    let label = format!("N={n} C kill");
    let failed = seen.iter().filter(|s| !s.ok).count();
    let failed_window: Vec<Duration> = seen.iter().filter(|s| !s.ok).map(|s| s.at).collect();
    let retried = seen.iter().filter(|s| s.retried).count();
    let last_from_victim = seen
        .iter()
        .filter(|s| s.instance == Some(0) && s.ok && s.at < killed_at + Duration::from_secs(2))
        .map(|s| s.at)
        .max();
    let back = restarted_at.and_then(|restart| {
        seen.iter()
            .filter(|s| s.instance == Some(0) && s.ok && s.at > restart)
            .map(|s| s.at)
            .min()
    });
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    results.add(&format!("{label}: requests"), seen.len() as f64, "", "");
    results.add(
        &format!("{label}: failed requests (transport, 5xx, wrong)"),
        failed as f64,
        "",
        if n > 1 {
            "0"
        } else {
            "(one instance: all fail until it is back)"
        },
    );
    results.add(
        &format!("{label}: answered after a retry on another instance"),
        retried as f64,
        "",
        "",
    );
    if let (Some(first), Some(last)) = (failed_window.iter().min(), failed_window.iter().max()) {
        println!(
            "    failures from {:.0} to {:.0} ms after the kill",
            ms(*first) - ms(killed_at),
            ms(*last) - ms(killed_at)
        );
    }
    if let Some(last) = last_from_victim {
        results.add(
            &format!("{label}: last answer from the killed instance, after the kill"),
            ms(last) - ms(killed_at),
            "ms",
            "",
        );
    }
    match (restarted_at, back) {
        (Some(restart), Some(back)) => {
            results.add(
                &format!("{label}: instance started again, after the kill"),
                ms(restart) - ms(killed_at),
                "ms",
                &format!("RESTART_DELAY {RESTART_DELAY_SECS} s"),
            );
            results.add(
                &format!("{label}: first answer from it after its restart"),
                ms(back) - ms(restart),
                "ms",
                "",
            );
        }
        _ => results.fail(&format!(
            "{label}: the killed instance did not come back (restarted: {restarted_at:?})"
        )),
    }
    let by_instance = seen.iter().fold(BTreeMap::new(), |mut m, s| {
        *m.entry(s.instance).or_insert(0u64) += 1;
        m
    });
    println!("    answers by instance: {by_instance:?}");
    let failures_by_status = seen
        .iter()
        .filter(|s| !s.ok)
        .fold(BTreeMap::new(), |mut m, s| {
            *m.entry(s.status).or_insert(0u64) += 1;
            m
        });
    println!("    failures by status (None: no answer): {failures_by_status:?}");
    if n > 1 && failed > 0 {
        results.fail(&format!("{label}: {failed} failed requests"));
    }
}
