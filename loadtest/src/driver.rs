//! The client side of a case: bare keep-alive HTTP/1.1 connections
//! (hyper's client, one request in flight each, so the client costs as
//! little CPU as possible on the machine it shares with the server), the
//! loop that sends what a case's plan says until the case stops it, and the
//! check of every answer's status, `WWW-Authenticate`, `Retry-After` and
//! JSON body against the decision expected for that request. What comes
//! back is counted by kind of request: latencies, statuses, wrong decisions,
//! 5xx, transport errors and timeouts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::rng::Rng;

/// Longest any one request may take before it counts as a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    host: HeaderValue,
    addr: SocketAddr,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Conn, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            sender,
            host: HeaderValue::from_str(&addr.to_string()).expect("host"),
            addr,
        })
    }

    /// POSTs an empty form to `path`, as a server-function call without
    /// arguments is made.
    pub async fn send(
        &mut self,
        path: &str,
        auth: Option<&HeaderValue>,
        dpop: Option<&HeaderValue>,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), String> {
        if self.sender.is_closed() || self.sender.ready().await.is_err() {
            // The other end closed this keep-alive connection after its
            // last answer (nginx does after `keepalive_requests`); nothing
            // was sent on it, so this is no failed request: open another,
            // as a browser would.
            *self = Conn::open(self.addr).await?;
            self.sender.ready().await.map_err(|e| e.to_string())?;
        }
        let mut req = Request::post(path)
            .header(header::HOST, self.host.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::CONTENT_LENGTH, "0")
            .header(header::ACCEPT, "application/json");
        if let Some(auth) = auth {
            req = req.header(header::AUTHORIZATION, auth.clone());
        }
        if let Some(dpop) = dpop {
            req = req.header("dpop", dpop.clone());
        }
        let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((parts.status, parts.headers, body))
    }
}

/// What the answer to one request must be.
#[derive(Clone)]
pub enum Expect {
    /// 200 `"ok"`.
    Health,
    /// 200 with this `sub` in the JSON.
    Valid(Arc<str>),
    /// 401 `invalid_token`, with the challenge.
    InvalidToken,
    /// 401 for a request without a token: the challenge with no error
    /// code (RFC 6750 §3.1).
    MissingToken,
    /// 503 with `Retry-After`.
    Unavailable,
    /// An unknown kid around the issuer's return: 503 with `Retry-After`
    /// while it is down, 401 `invalid_token` once a refetch succeeded
    /// without the kid. Which one applies is checked by time afterwards.
    UnavailableOrInvalid,
    /// A token whose key is coming back: 503 with `Retry-After` until the
    /// server has it, then 200 with this `sub`.
    ValidOrUnavailable(Arc<str>),
}

impl Expect {
    /// Whether an answer is the one expected.
    pub fn check(&self, status: StatusCode, headers: &http::HeaderMap, body: &[u8]) -> bool {
        let has = |needle: &str| body.windows(needle.len()).any(|w| w == needle.as_bytes());
        let invalid_token = || {
            status == StatusCode::UNAUTHORIZED
                && headers
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with(r#"Bearer realm="api", error="invalid_token""#))
                && has(r#""error":"invalid_token""#)
        };
        let unavailable = || {
            status == StatusCode::SERVICE_UNAVAILABLE
                && headers
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|s| (1..=3600).contains(&s))
        };
        let valid = |sub: &str| status == StatusCode::OK && has(&format!(r#""sub":"{sub}""#));
        match self {
            Expect::Health => status == StatusCode::OK && body == b"\"ok\"",
            Expect::Valid(sub) => valid(sub),
            Expect::InvalidToken => invalid_token(),
            Expect::MissingToken => {
                status == StatusCode::UNAUTHORIZED
                    && headers
                        .get(header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| {
                            v.starts_with(r#"Bearer realm="api""#) && !v.contains("error=")
                        })
            }
            Expect::Unavailable => unavailable(),
            Expect::ValidOrUnavailable(sub) => valid(sub) || unavailable(),
            Expect::UnavailableOrInvalid => unavailable() || invalid_token(),
        }
    }
}

/// Kinds of request, reported separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    Health,
    Valid,
    Invalid,
    Unknown,
    Recovering,
}

/// One request and what its answer must be.
pub struct Req {
    pub path: &'static str,
    pub auth: Option<HeaderValue>,
    /// A `DPoP` proof header, sent with a DPoP-bound token.
    pub dpop: Option<HeaderValue>,
    pub expect: Expect,
    pub class: Class,
}

/// Makes the requests of one case; may change with the case's phase.
pub trait Plan: Send + Sync {
    fn next(&self, worker: usize, rng: &mut Rng) -> Req;
}

impl<F: Fn(usize, &mut Rng) -> Req + Send + Sync> Plan for F {
    fn next(&self, worker: usize, rng: &mut Rng) -> Req {
        self(worker, rng)
    }
}

/// What the requests of a case got, by kind of request.
#[derive(Default)]
pub struct Stats {
    latencies: BTreeMap<Class, Vec<u32>>,
    statuses: BTreeMap<(Class, u16), u64>,
    pub wrong: u64,
    pub five_xx: u64,
    /// Transport errors and requests over [`REQUEST_TIMEOUT`].
    pub failures: u64,
    pub examples: Vec<String>,
    /// (class, when it finished since the start, status)
    pub timeline: Vec<(Class, Duration, u16)>,
    pub elapsed: Duration,
}

impl Stats {
    pub fn merge(&mut self, other: Stats) {
        for (class, mut l) in other.latencies {
            self.latencies.entry(class).or_default().append(&mut l);
        }
        for (k, n) in other.statuses {
            *self.statuses.entry(k).or_default() += n;
        }
        self.wrong += other.wrong;
        self.five_xx += other.five_xx;
        self.failures += other.failures;
        self.examples.extend(other.examples);
        self.examples.truncate(5);
        self.timeline.extend(other.timeline);
    }

    pub fn count(&self, class: Class) -> u64 {
        self.latencies.get(&class).map_or(0, |l| l.len() as u64)
    }

    pub fn total(&self) -> u64 {
        self.latencies.values().map(|l| l.len() as u64).sum()
    }

    pub fn throughput(&self, class: Class) -> f64 {
        self.count(class) as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q` quantile (0..1) of `class`'s latencies, in milliseconds.
    pub fn quantile_ms(&mut self, class: Class, q: f64) -> f64 {
        let Some(l) = self.latencies.get_mut(&class) else {
            return f64::NAN;
        };
        if l.is_empty() {
            return f64::NAN;
        }
        l.sort_unstable();
        let i = ((l.len() as f64 * q) as usize).min(l.len() - 1);
        f64::from(l[i]) / 1000.0
    }

    pub fn max_ms(&self, class: Class) -> f64 {
        self.latencies
            .get(&class)
            .and_then(|l| l.iter().max())
            .map_or(f64::NAN, |m| f64::from(*m) / 1000.0)
    }

    pub fn status_count(&self, class: Class, status: u16) -> u64 {
        self.statuses.get(&(class, status)).copied().unwrap_or(0)
    }
}

/// When a case's load stops.
pub struct Stop {
    deadline: Instant,
    /// Requests left (shared by every worker), if bounded by count.
    budget: Option<AtomicU64>,
    pub flag: AtomicBool,
}

impl Stop {
    pub fn after(d: Duration) -> Arc<Stop> {
        Arc::new(Stop {
            deadline: Instant::now() + d,
            budget: None,
            flag: AtomicBool::new(false),
        })
    }

    pub fn after_count(n: u64, max: Duration) -> Arc<Stop> {
        Arc::new(Stop {
            deadline: Instant::now() + max,
            budget: Some(AtomicU64::new(n)),
            flag: AtomicBool::new(false),
        })
    }

    fn take(&self) -> bool {
        if self.flag.load(Ordering::Relaxed) || Instant::now() >= self.deadline {
            return false;
        }
        match &self.budget {
            None => true,
            Some(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

/// Runs `workers` connections until `stop`, each sending what `plan`
/// says, `pace` apart if given, and checks every answer.
pub async fn drive(
    addr: SocketAddr,
    workers: usize,
    plan: Arc<dyn Plan>,
    stop: Arc<Stop>,
    pace: Option<Duration>,
    seed: u64,
) -> Stats {
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers {
        let (plan, stop) = (plan.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            let mut rng = Rng::new(seed ^ ((w as u64 + 1) * 7919));
            let mut conn = None;
            let mut next_at = tokio::time::Instant::now();
            while stop.take() {
                if let Some(pace) = pace {
                    tokio::time::sleep_until(next_at).await;
                    next_at += pace;
                }
                let req = plan.next(w, &mut rng);
                if conn.is_none() {
                    match Conn::open(addr).await {
                        Ok(c) => conn = Some(c),
                        Err(e) => {
                            stats.failures += 1;
                            stats.examples.push(format!("connect: {e}"));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let c = conn.as_mut().expect("connection");
                let t0 = Instant::now();
                let outcome = tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    c.send(req.path, req.auth.as_ref(), req.dpop.as_ref()),
                )
                .await;
                let took = t0.elapsed();
                stats
                    .latencies
                    .entry(req.class)
                    .or_default()
                    .push(took.as_micros().min(u128::from(u32::MAX)) as u32);
                match outcome {
                    Ok(Ok((status, headers, body))) => {
                        *stats
                            .statuses
                            .entry((req.class, status.as_u16()))
                            .or_default() += 1;
                        if matches!(req.class, Class::Recovering | Class::Unknown) {
                            stats
                                .timeline
                                .push((req.class, start.elapsed(), status.as_u16()));
                        }
                        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
                            stats.five_xx += 1;
                        }
                        if !req.expect.check(status, &headers, &body) {
                            stats.wrong += 1;
                            if stats.examples.len() < 3 {
                                stats.examples.push(format!(
                                    "{:?}: got {status} {:?} {}",
                                    req.class,
                                    headers.get(header::WWW_AUTHENTICATE),
                                    String::from_utf8_lossy(&body[..body.len().min(160)])
                                ));
                            }
                        }
                    }
                    Ok(Err(e)) => {
                        stats.failures += 1;
                        stats.examples.push(format!("{:?}: {e}", req.class));
                        conn = None;
                    }
                    Err(_) => {
                        stats.failures += 1;
                        stats.examples.push(format!(
                            "{:?}: no answer within {REQUEST_TIMEOUT:?}",
                            req.class
                        ));
                        conn = None;
                    }
                }
            }
            stats
        }));
    }
    let mut all = Stats::default();
    for t in tasks {
        if let Ok(s) = t.await {
            all.merge(s);
        }
    }
    all.elapsed = start.elapsed();
    all
}
