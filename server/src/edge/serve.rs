//! The connection loop: accepts TCP connections and serves the app's router
//! on them, in place of `axum::serve`, which offers none of the limits a
//! server that faces clients alone needs. This module owns:
//!
//! - **deadlines**: a connection must finish its request head within
//!   [`ServeOptions::header_read_timeout`] of opening (on a reused
//!   connection: of the head's first byte), and may sit idle between
//!   requests for [`ServeOptions::keepalive_idle`]; past either it is closed
//!   without an answer. A request body must arrive whole within
//!   [`ServeOptions::body_read_timeout`] of its head, and at no less than
//!   [`MIN_BODY_RATE`] once [`BODY_RATE_GRACE`] has passed, or the request is
//!   answered `408` and the connection closed; an answer must be handed to
//!   the socket whole within [`ServeOptions::send_timeout`] of starting to
//!   go out, or the connection is closed. The server's own work on a
//!   request (the handler, once it is not waiting on the client) has no
//!   deadline here;
//! - **memory per connection**: a response body is not read ahead of the
//!   socket by more than [`WRITE_BUFFER`] bytes (plus the chunk in hand),
//!   so a client that does not read its answer holds tens of KiB of the
//!   server's memory, not the whole file;
//! - **the connection cap**: at most [`ServeOptions::max_connections`] are
//!   open at once, so accept never fails for lack of descriptors (the
//!   default is derived from the descriptor limit: [`descriptor_limit`],
//!   [`default_max_connections`]). At the cap, the oldest connections that
//!   are waiting on their client (still sending their head, idle, or, for
//!   longer than [`STUCK_GRACE`], sending a body or not reading an answer)
//!   are closed to make room, a small batch at a time; when every
//!   connection is being served, the new one is closed at once;
//! - **the listen queue**: [`bind`] asks the kernel to queue 4096 new
//!   connections, not tokio's 128, so a burst is accepted, not dropped;
//! - **accept errors**, logged at most once a second with a count (as are
//!   the connections closed at the cap);
//! - **graceful shutdown**: stop accepting, close idle connections, let the
//!   requests in flight finish ([`ServeOptions::shutdown_grace`] bounds how
//!   long that may take).
//!
//! HTTP/1.1 only: the app serves browsers over plain HTTP/1.1 (behind TLS
//! termination when exposed), as `axum::serve` did here with axum's default
//! features; no protocol upgrades (nothing here uses WebSockets).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt as _;

/// What the loop serves: the app as one tower service (`server::app_with`),
/// or any axum `Router`. Generic rather than boxed, so a request costs no
/// allocation or clone of the whole stack on its way in.
pub trait App:
    tower::Service<
        Request<Body>,
        Response = Response<Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> App for S where
    S: tower::Service<
            Request<Body>,
            Response = Response<Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// Descriptors kept for the server's own use, outside the connection cap:
/// standard streams, listeners, the runtime's, the dev server's, outbound
/// connections to the issuer.
pub const DESCRIPTOR_RESERVE: u64 = 64;
/// The derived default never exceeds this: each open connection holds
/// buffers (tens of KiB at most), so a very high descriptor limit should
/// not turn into an unbounded amount of memory held by idle clients.
pub const DEFAULT_MAX_CONNECTIONS_CEILING: usize = 10_000;
/// The derived default never goes below this, however low the limit.
const DEFAULT_MAX_CONNECTIONS_FLOOR: usize = 16;
/// After an accept error that is not about one connection (out of
/// descriptors or memory), wait this long before accepting again instead
/// of spinning on the same error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// How long a new connection at the cap waits for the slot of a
/// connection closed to make room for it; that one closes as soon as its
/// task runs, so this is only a bound.
const EVICTION_WAIT: Duration = Duration::from_secs(1);
/// At most this many connections are closed at once to make room.
const MAX_EVICTION_BATCH: usize = 64;
/// How many new connections the kernel queues for `accept` (it caps this at
/// `net.core.somaxconn`, 4096 on current Linux). `TcpListener::bind` asks
/// for 128, as the standard library does; a burst past that (a flood, or
/// many browsers at once) is dropped by the kernel, and each dropped
/// client, honest ones included, waits a second for its retry.
pub const LISTEN_BACKLOG: u32 = 4096;
/// Repeated log lines (accept errors, connections closed at the cap) are
/// reported at most this often, with a count.
const LOG_EVERY: Duration = Duration::from_secs(1);
/// At the cap, a connection that has been waiting this long for the rest
/// of a request body, or for its client to take bytes of an answer, is
/// waiting on its client, not being served, and may be closed to make
/// room. An honest body follows its head at once, and an honest reader
/// takes bytes as fast as the network carries them.
pub const STUCK_GRACE: Duration = Duration::from_secs(1);
/// A body still awaited this long after its head must have arrived at
/// [`MIN_BODY_RATE`] on average since the head, or the request is answered
/// `408`: a body trickled a byte at a time would otherwise hold its
/// connection for the whole [`ServeOptions::body_read_timeout`].
pub const BODY_RATE_GRACE: Duration = Duration::from_secs(2);
/// Bytes a second; see [`BODY_RATE_GRACE`]. The app's bodies are a few
/// hundred bytes and arrive with their head.
pub const MIN_BODY_RATE: u64 = 1024;
/// A response body is read no further ahead of the socket than this many
/// bytes (the flow control nginx's `sendfile_max_chunk` and output buffers
/// give it): without it hyper queued up to 400 KiB of a file per
/// connection for a client that never read, and 2,000 such clients held
/// 800 MB; now one holds about 43 KiB (`tests/slow_readers.rs`). The
/// largest chunk a body yields (8 KiB for the files under `/pkg`,
/// `crate::edge::delivery::FILE_CHUNK`) can come on top.
pub const WRITE_BUFFER: i64 = 8 * 1024;

/// Listens on `addr` as `TcpListener::bind` does (with `SO_REUSEADDR`),
/// but with a queue of [`LISTEN_BACKLOG`] new connections.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The process's file-descriptor limit (the soft `RLIMIT_NOFILE`, what
/// `ulimit -n` shows); `u64::MAX` when unlimited.
pub fn descriptor_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives
    // for the whole call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(match limit.rlim_cur {
        libc::RLIM_INFINITY => u64::MAX,
        soft => soft,
    })
}

/// The connection cap when `MAX_CONNECTIONS` is not set: half the
/// descriptor limit minus [`DESCRIPTOR_RESERVE`], between 16 and
/// [`DEFAULT_MAX_CONNECTIONS_CEILING`]. Half, because a connection can hold
/// a second descriptor while it is served (a file under `/pkg/` being
/// sent), and the cap must hold with every connection doing that.
pub fn default_max_connections(fd_limit: u64) -> usize {
    let half = (fd_limit / 2).saturating_sub(DESCRIPTOR_RESERVE);
    usize::try_from(half).unwrap_or(usize::MAX).clamp(
        DEFAULT_MAX_CONNECTIONS_FLOOR,
        DEFAULT_MAX_CONNECTIONS_CEILING,
    )
}

/// How the server treats its connections.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// `HEADER_READ_TIMEOUT_SECS`.
    pub header_read_timeout: Duration,
    /// `KEEPALIVE_IDLE_SECS`.
    pub keepalive_idle: Duration,
    /// `BODY_READ_TIMEOUT_SECS`.
    pub body_read_timeout: Duration,
    /// `SEND_TIMEOUT_SECS`.
    pub send_timeout: Duration,
    /// `MAX_CONNECTIONS`, or its derived default (at least 1).
    pub max_connections: usize,
    /// Once shutdown begins, how long the requests in flight get to
    /// finish before their connections are closed; `None` waits for them
    /// however long they take.
    pub shutdown_grace: Option<Duration>,
}

/// What the server has done so far, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections open now.
    pub open: usize,
    /// Connections accepted and served.
    pub accepted: u64,
    /// Closed because their request head was not in within the timeout.
    pub head_timeouts: u64,
    /// Closed after sitting idle for the keep-alive timeout.
    pub idle_timeouts: u64,
    /// Requests answered `408` (and their connections closed) because the
    /// body did not arrive in time or fast enough.
    pub body_timeouts: u64,
    /// Closed because an answer was not taken whole within the send
    /// timeout.
    pub send_timeouts: u64,
    /// Closed at the cap to make room for a new connection.
    pub evicted: u64,
    /// New connections closed at once at the cap, every slot being busy.
    pub refused: u64,
    /// Failed `accept` calls.
    pub accept_errors: u64,
}

/// A server bound to its listener, not yet serving.
pub struct Server {
    listener: TcpListener,
    options: ServeOptions,
    shared: Arc<Shared>,
}

/// Reads a running [`Server`]'s [`Stats`].
#[derive(Clone)]
pub struct StatsHandle(Arc<Shared>);

impl StatsHandle {
    pub fn get(&self) -> Stats {
        let counters = &self.0.counters;
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            open: self.0.open_connections(),
            accepted: read(&counters.accepted),
            head_timeouts: read(&counters.head_timeouts),
            idle_timeouts: read(&counters.idle_timeouts),
            body_timeouts: read(&counters.body_timeouts),
            send_timeouts: read(&counters.send_timeouts),
            evicted: read(&counters.evicted),
            refused: read(&counters.refused),
            accept_errors: read(&counters.accept_errors),
        }
    }
}

impl Server {
    pub fn new(listener: TcpListener, mut options: ServeOptions) -> Server {
        options.max_connections = options.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Server {
            listener,
            shared: Arc::new(Shared {
                permits: Arc::new(Semaphore::new(options.max_connections)),
                connections: Mutex::new(BTreeMap::new()),
                next_id: AtomicU64::new(0),
                evicting: AtomicUsize::new(0),
                counters: Counters::default(),
                epoch: Instant::now(),
            }),
            options,
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn stats(&self) -> StatsHandle {
        StatsHandle(self.shared.clone())
    }

    /// Serves `app` until `shutdown` resolves, then stops accepting, closes
    /// idle connections and returns once the requests in flight are done
    /// (or the grace period is over).
    pub async fn run<S: App>(self, app: S, shutdown: impl Future<Output = ()>) {
        let Server {
            listener,
            options,
            shared,
        } = self;
        let limits = Deadlines {
            header_read_timeout: options.header_read_timeout,
            keepalive_idle: options.keepalive_idle,
            body_read_timeout: options.body_read_timeout,
            send_timeout: options.send_timeout,
        };
        let mut shutdown = pin!(shutdown);
        let mut tick = tokio::time::interval(LOG_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut logs = Logs::default();
        loop {
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = tick.tick() => {
                    logs.flush(Instant::now(), options.max_connections);
                    continue;
                }
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _peer)) => stream,
                Err(err) => {
                    shared
                        .counters
                        .accept_errors
                        .fetch_add(1, Ordering::Relaxed);
                    let pause = !is_connection_error(&err);
                    logs.accept_error(err, Instant::now());
                    if pause {
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                    continue;
                }
            };
            let permit = match shared.slot(&mut logs, options.max_connections).await {
                Slot::Free(permit) => permit,
                Slot::Full => {
                    drop(stream);
                    shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                    logs.refused(Instant::now(), options.max_connections);
                    continue;
                }
            };
            shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
            let (id, conn) = shared.register();
            tokio::spawn(serve_connection(
                stream,
                app.clone(),
                id,
                conn,
                shared.clone(),
                limits,
                permit,
            ));
        }
        drop(listener);
        logs.flush(Instant::now(), options.max_connections);
        shutdown_connections(&shared, options.max_connections, options.shutdown_grace).await;
    }
}

/// Lets the connections finish: idle ones close at once, busy ones after
/// their request. Every connection holds a permit until its socket is
/// closed, so holding all the permits means every connection is closed.
/// A later shutdown setting (a grace period from the environment) only
/// needs to fill in `grace`.
async fn shutdown_connections(shared: &Shared, max_connections: usize, grace: Option<Duration>) {
    let open = shared.for_each_connection(|conn| conn.signal(&conn.graceful));
    tracing::info!(
        open,
        "shutting down: no longer accepting; letting requests in flight finish"
    );
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let everyone_closed = shared.permits.acquire_many(all);
    match grace {
        None => drop(everyone_closed.await),
        Some(grace) => {
            if tokio::time::timeout(grace, everyone_closed).await.is_err() {
                let left = shared.for_each_connection(|conn| {
                    shared.evict(conn);
                });
                tracing::warn!(
                    left,
                    ?grace,
                    "connections still busy after the grace period; closing them"
                );
            }
        }
    }
}

/// Resource errors (out of descriptors, of memory) are the process's
/// problem and call for a pause; these are one connection's.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// State shared by the accept loop and the connections.
struct Shared {
    /// One permit per open connection, held until its socket is closed.
    permits: Arc<Semaphore>,
    /// The open connections, oldest first, for the eviction at the cap
    /// and for shutdown.
    connections: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    /// Connections told to close to make room whose slot is not back yet.
    evicting: AtomicUsize,
    counters: Counters,
    /// Connection phases store their start as nanoseconds since this.
    epoch: Instant,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    head_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
    body_timeouts: AtomicU64,
    send_timeouts: AtomicU64,
    evicted: AtomicU64,
    refused: AtomicU64,
    accept_errors: AtomicU64,
}

enum Slot {
    Free(OwnedSemaphorePermit),
    /// At the cap, and every connection is serving a request.
    Full,
}

impl Shared {
    fn connections(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn open_connections(&self) -> usize {
        self.connections().len()
    }

    fn register(&self) -> (u64, Arc<Conn>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(self.since_epoch(Instant::now())));
        self.connections().insert(id, conn.clone());
        (id, conn)
    }

    fn since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// `at` as a mark for the fields of [`Conn`] where 0 means "none".
    fn stamp(&self, at: Instant) -> u64 {
        self.since_epoch(at).max(1)
    }

    fn at(&self, nanos: u64) -> Instant {
        self.epoch + Duration::from_nanos(nanos)
    }

    /// Calls `f` on every open connection; returns how many there are.
    fn for_each_connection(&self, f: impl Fn(&Conn)) -> usize {
        let connections = self.connections();
        connections.values().for_each(|conn| f(conn));
        connections.len()
    }

    /// A permit for a new connection. Below the cap there is one. At the
    /// cap, the new connection gets the slot of the oldest connection that
    /// is waiting on its client ([`Shared::waits_on_client`]): holding a
    /// slot without sending a request, or without sending its body or
    /// reading its answer, is the one thing an abusive client can do
    /// cheaply, and an honest client's head and body come right after its
    /// connection, so it is never the oldest. When every slot is being
    /// served the server is simply
    /// full: the new connection is closed at once rather than kept waiting
    /// (a queue at the cap is where a flood would bury honest clients), so
    /// the client learns at once and may retry.
    ///
    /// Room is made a batch at a time (1% of the cap, at most
    /// [`MAX_EVICTION_BATCH`]), and not again while an earlier batch is
    /// still giving its slots back: a slot comes back only once the
    /// closed connection's task has run, and waiting for that once per
    /// new connection (two hand-offs between threads) made a flood past
    /// the cap slow to accept, honest connections with it.
    async fn slot(&self, logs: &mut Logs, max_connections: usize) -> Slot {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Slot::Free(permit);
        }
        if self.evicting.load(Ordering::Acquire) == 0 {
            let batch = (max_connections / 100).clamp(1, MAX_EVICTION_BATCH);
            let evicted = self.evict_oldest_waiting(batch);
            if evicted == 0 {
                return Slot::Full;
            }
            logs.evicted(Instant::now(), evicted, max_connections);
        }
        match tokio::time::timeout(EVICTION_WAIT, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Slot::Free(permit),
            _ => Slot::Full,
        }
    }

    /// Closes up to `n` of the oldest connections that are waiting on their
    /// client; returns how many. Oldest by when they were opened: a scan
    /// by phase age would cost more for no better choice under a flood,
    /// whose connections are all alike.
    fn evict_oldest_waiting(&self, n: usize) -> usize {
        let now = self.since_epoch(Instant::now());
        let connections = self.connections();
        let mut evicted = 0;
        for conn in connections.values() {
            if evicted == n {
                break;
            }
            // A request may begin on it between this check and its task
            // noticing; that request is lost, as when an idle keep-alive
            // connection closes under a client's feet, which browsers
            // retry.
            if self.waits_on_client(conn, now) && self.evict(conn) {
                evicted += 1;
            }
        }
        self.counters
            .evicted
            .fetch_add(evicted as u64, Ordering::Relaxed);
        evicted
    }

    /// Whether `conn` is waiting on its client rather than being served:
    /// it has no request in flight, or, for at least [`STUCK_GRACE`], its
    /// request's body has been awaited or its socket has refused bytes.
    /// A request whose body is in and whose answer is being made (the
    /// server's own work) is never one.
    fn waits_on_client(&self, conn: &Conn, now: u64) -> bool {
        if conn.phase.load(Ordering::Acquire) != BUSY {
            return true;
        }
        let grace = u64::try_from(STUCK_GRACE.as_nanos()).unwrap_or(u64::MAX);
        let stuck_since = |mark: &AtomicU64| {
            let since = mark.load(Ordering::Relaxed);
            since != 0 && now.saturating_sub(since) >= grace
        };
        (conn.body_waiting.load(Ordering::Relaxed) && stuck_since(&conn.body_head))
            || stuck_since(&conn.write_blocked_since)
    }

    /// Tells `conn` to close now, unless it was told already.
    fn evict(&self, conn: &Conn) -> bool {
        if conn.evicted.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.evicting.fetch_add(1, Ordering::AcqRel);
        conn.wake.notify_one();
        true
    }
}

/// Where a connection is in its request cycle.
const FRESH: u8 = 0; // opened, no request yet
const IDLE: u8 = 1; // between requests, no byte of the next one yet
const HEAD: u8 = 2; // reused, the next head has begun
const BUSY: u8 = 3; // a request is being served

/// One connection's state, shared by its task, its IO, its service and
/// the accept loop.
struct Conn {
    phase: AtomicU8,
    /// When the phase began, in nanoseconds since [`Shared::epoch`].
    since: AtomicU64,
    /// Requests whose response is not yet fully written.
    in_flight: AtomicUsize,
    /// Of those, the ones whose response has started to go out.
    answers_open: AtomicUsize,
    /// The [`Shared::stamp`] of the head whose body is being read, 0 when
    /// none is. One body at a time: hyper reads the next head only once
    /// the body before it is done.
    body_head: AtomicU64,
    /// The handler is waiting for more of that body (its last poll of the
    /// body found nothing), so the client, not the server, is behind.
    body_waiting: AtomicBool,
    /// Bytes of that body read so far.
    body_received: AtomicU64,
    /// The stamp of when the earliest answer not yet handed whole to the
    /// socket started to go out; 0 when every answer has been. A later
    /// (pipelined) answer does not move it.
    send_since: AtomicU64,
    /// The stamp of when the socket began refusing bytes; 0 while it takes
    /// them.
    write_blocked_since: AtomicU64,
    /// Answer bytes a response body has yielded less bytes written to the
    /// socket (heads and chunk framing count too, so it runs a little
    /// low); reset when the socket has everything. See [`WRITE_BUFFER`].
    unsent: AtomicI64,
    /// A response body is holding back until `unsent` drops below
    /// [`WRITE_BUFFER`]; the socket's next write wakes it.
    parked: AtomicBool,
    /// Close now (at the cap, or when the grace period is over); set once,
    /// by [`Shared::evict`].
    evicted: AtomicBool,
    /// Shutdown has begun: finish the request in flight, then close.
    graceful: AtomicBool,
    /// Wakes the connection's task to look at the two flags above.
    wake: Notify,
}

impl Conn {
    fn new(opened: u64) -> Conn {
        Conn {
            phase: AtomicU8::new(FRESH),
            since: AtomicU64::new(opened),
            in_flight: AtomicUsize::new(0),
            answers_open: AtomicUsize::new(0),
            body_head: AtomicU64::new(0),
            body_waiting: AtomicBool::new(false),
            body_received: AtomicU64::new(0),
            send_since: AtomicU64::new(0),
            write_blocked_since: AtomicU64::new(0),
            unsent: AtomicI64::new(0),
            parked: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            graceful: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    fn enter(&self, phase: u8, since: u64) {
        self.since.store(since, Ordering::Relaxed);
        self.phase.store(phase, Ordering::Release);
    }

    fn signal(&self, flag: &AtomicBool) {
        flag.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

#[derive(Clone, Copy, Debug)]
struct Deadlines {
    header_read_timeout: Duration,
    keepalive_idle: Duration,
    body_read_timeout: Duration,
    send_timeout: Duration,
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The client closed it, or hyper did (an error, `Connection: close`).
    Done,
    HeadTimeout,
    IdleTimeout,
    SendTimeout,
    Evicted,
}

impl Deadlines {
    /// When `conn` is to be closed if nothing changes, and why. (The body
    /// deadline is kept by the request itself, [`Tracked`], which can
    /// still answer `408`.)
    fn of(&self, conn: &Conn, shared: &Shared) -> Option<(Instant, End)> {
        let phase = conn.phase.load(Ordering::Acquire);
        let since = shared.at(conn.since.load(Ordering::Relaxed));
        let by_phase = match phase {
            FRESH | HEAD => Some((since + self.header_read_timeout, End::HeadTimeout)),
            IDLE => Some((since + self.keepalive_idle, End::IdleTimeout)),
            _ => None,
        };
        let sending = match conn.send_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some((shared.at(since) + self.send_timeout, End::SendTimeout)),
        };
        match (by_phase, sending) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

async fn serve_connection<S: App>(
    stream: TcpStream,
    app: S,
    id: u64,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
    deadlines: Deadlines,
    permit: OwnedSemaphorePermit,
) {
    let end = drive(stream, app, &conn, &shared, deadlines).await;
    // The socket is closed by now (`drive` owned it); only then is its
    // slot given back, so open sockets never exceed the cap.
    match end {
        End::Done | End::Evicted => {}
        End::HeadTimeout => {
            shared
                .counters
                .head_timeouts
                .fetch_add(1, Ordering::Relaxed);
        }
        End::IdleTimeout => {
            shared
                .counters
                .idle_timeouts
                .fetch_add(1, Ordering::Relaxed);
        }
        End::SendTimeout => {
            shared
                .counters
                .send_timeouts
                .fetch_add(1, Ordering::Relaxed);
        }
    }
    tracing::trace!(id, ?end, "connection closed");
    shared.connections().remove(&id);
    // Before the slot is given back: the accept loop, seeing an eviction
    // under way, waits for a slot, which must then still be coming. (The
    // other order let it wait out EVICTION_WAIT for a slot it had already
    // taken.) At worst it sees none under way a moment early and closes
    // one batch more than needed.
    if conn.evicted.load(Ordering::Acquire) {
        shared.evicting.fetch_sub(1, Ordering::AcqRel);
    }
    drop(permit);
}

/// Serves one connection until it ends, a deadline passes or it is
/// evicted; the connection and its socket are dropped on return.
///
/// hyper's own `header_read_timeout` is left off: in hyper 1.x (checked in
/// 1.12's `proto/h1/conn.rs`) its timer starts whenever the connection
/// waits for a head, which includes the idle wait between keep-alive
/// requests, so it would close idle connections after the header timeout
/// and leave no room for a longer keep-alive. The phases of [`Conn`] tell
/// the two waits apart.
async fn drive<S: App>(
    stream: TcpStream,
    app: S,
    conn: &Arc<Conn>,
    shared: &Arc<Shared>,
    deadlines: Deadlines,
) -> End {
    let io = TokioIo::new(Watched {
        stream,
        conn: conn.clone(),
        shared: shared.clone(),
    });
    let service = Tracked {
        app,
        conn: conn.clone(),
        shared: shared.clone(),
        body_read_timeout: deadlines.body_read_timeout,
    };
    let mut builder = http1::Builder::new();
    builder.header_read_timeout(None);
    let mut connection = pin!(builder.serve_connection(io, service));
    let first = deadlines
        .of(conn, shared)
        .map_or_else(Instant::now, |(at, _)| at);
    let mut sleep = pin!(tokio::time::sleep_until(first));
    let mut wake = pin!(conn.wake.notified());
    let mut shutting_down = false;
    poll_fn(|cx| loop {
        if let Poll::Ready(result) = connection.as_mut().poll(cx) {
            if let Err(err) = result {
                tracing::debug!(%err, "connection failed");
            }
            return Poll::Ready(End::Done);
        }
        if wake.as_mut().poll(cx).is_ready() {
            wake.set(conn.wake.notified());
            if conn.evicted.load(Ordering::Acquire) {
                return Poll::Ready(End::Evicted);
            }
            if conn.graceful.load(Ordering::Acquire) && !shutting_down {
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
            // Poll the connection again (a graceful shutdown may end it)
            // and register the new `wake`.
            continue;
        }
        // The phase only changes while the connection is polled (in its
        // IO, service and body, all run by this task), so the deadline is
        // up to date here.
        let Some((deadline, why)) = deadlines.of(conn, shared) else {
            return Poll::Pending;
        };
        // The timer is only ever moved earlier: each request on a
        // keep-alive connection pushes its deadline later, and re-arming
        // the timer for that every time would be timer-wheel work on every
        // request. One armed too early fires, finds the deadline later and
        // is re-armed then, at most once per timeout.
        if deadline < sleep.deadline() {
            sleep.as_mut().reset(deadline);
        }
        match sleep.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(()) if Instant::now() >= deadline => return Poll::Ready(why),
            Poll::Ready(()) => {
                sleep.as_mut().reset(deadline);
                continue;
            }
        }
    })
    .await
}

/// The socket, watched for the first byte of a head after an idle spell,
/// for writes it refuses (a client not reading), and for when it has been
/// handed every answer so far.
struct Watched {
    stream: TcpStream,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before && self.conn.phase.load(Ordering::Acquire) == IDLE {
            let now = self.shared.since_epoch(Instant::now());
            self.conn.enter(HEAD, now);
        }
        polled
    }
}

impl Watched {
    /// Notes what a write did: bytes taken end a blocked spell and may let
    /// a parked response body go on; a refusal starts a blocked spell.
    fn wrote(&self, polled: &Poll<io::Result<usize>>, cx: &Context<'_>) {
        let conn = &self.conn;
        match polled {
            Poll::Ready(Ok(n)) => {
                if conn.write_blocked_since.load(Ordering::Relaxed) != 0 {
                    conn.write_blocked_since.store(0, Ordering::Relaxed);
                }
                let n = i64::try_from(*n).unwrap_or(i64::MAX);
                let left = conn.unsent.fetch_sub(n, Ordering::Relaxed) - n;
                if left < WRITE_BUFFER && conn.parked.swap(false, Ordering::Relaxed) {
                    // The body is polled by this same task, later in this
                    // turn of hyper's loop or the next.
                    cx.waker().wake_by_ref();
                }
            }
            Poll::Pending => {
                if conn.write_blocked_since.load(Ordering::Relaxed) == 0 {
                    let now = self.shared.stamp(Instant::now());
                    conn.write_blocked_since.store(now, Ordering::Relaxed);
                }
            }
            Poll::Ready(Err(_)) => {}
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.wrote(&polled, cx);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.wrote(&polled, cx);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    /// hyper flushes the socket once its own buffer is written out, so
    /// with no answer still going out every answer has been handed over
    /// whole.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_flush(cx);
        let conn = &self.conn;
        if conn.send_since.load(Ordering::Relaxed) != 0
            && conn.answers_open.load(Ordering::Relaxed) == 0
        {
            conn.send_since.store(0, Ordering::Relaxed);
            conn.unsent.store(0, Ordering::Relaxed);
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The router, marking the connection busy from a request's head until
/// its response is written, and keeping the request's body deadline.
struct Tracked<S> {
    app: S,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
    body_read_timeout: Duration,
}

type TrackedFuture =
    Pin<Box<dyn Future<Output = Result<Response<TrackedBody>, Infallible>> + Send>>;

impl<S: App> hyper::service::Service<Request<Incoming>> for Tracked<S> {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = TrackedFuture;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let guard = InFlight::begin(self.conn.clone(), self.shared.clone());
        let (conn, shared) = (self.conn.clone(), self.shared.clone());
        if hyper::body::Body::is_end_stream(request.body()) {
            let response = self.app.clone().oneshot(request.map(Body::new));
            return Box::pin(async move {
                let response = response.await?;
                Ok(answer(response, guard, &conn, &shared))
            });
        }
        let head = shared.stamp(Instant::now());
        conn.body_received.store(0, Ordering::Relaxed);
        conn.body_waiting.store(false, Ordering::Relaxed);
        conn.body_head.store(head, Ordering::Relaxed);
        let request = request.map(|incoming| {
            Body::new(AwaitedBody {
                incoming,
                conn: conn.clone(),
                head,
            })
        });
        let response = self.app.clone().oneshot(request);
        let timeout = self.body_read_timeout;
        Box::pin(async move {
            let response = tokio::select! {
                biased;
                response = response => response?,
                () = body_overdue(&conn, &shared, head, timeout) => {
                    shared.counters.body_timeouts.fetch_add(1, Ordering::Relaxed);
                    request_timeout(timeout)
                }
            };
            Ok(answer(response, guard, &conn, &shared))
        })
    }
}

/// The response, as it starts to go out. Its send deadline runs from now
/// when every earlier answer has been written (`unsent` at or below 0:
/// only their heads' few hundred bytes can still be unwritten then), and
/// otherwise keeps running from when the earliest unwritten one started:
/// a pipelined request does not buy an unread answer more time.
fn answer(
    response: Response<Body>,
    mut guard: InFlight,
    conn: &Arc<Conn>,
    shared: &Shared,
) -> Response<TrackedBody> {
    let caught_up =
        conn.answers_open.load(Ordering::Relaxed) == 0 && conn.unsent.load(Ordering::Relaxed) <= 0;
    if caught_up || conn.send_since.load(Ordering::Relaxed) == 0 {
        conn.unsent.store(0, Ordering::Relaxed);
        conn.send_since
            .store(shared.stamp(Instant::now()), Ordering::Relaxed);
    }
    conn.answers_open.fetch_add(1, Ordering::Relaxed);
    guard.answering = true;
    response.map(|body| TrackedBody {
        body,
        guard: Some(guard),
        conn: conn.clone(),
    })
}

/// Resolves when the body of the request whose head came at `head` is
/// overdue: still awaited `timeout` after the head, or, after
/// [`BODY_RATE_GRACE`], behind [`MIN_BODY_RATE`]. Only while the handler
/// waits for it: a handler busy with its own work is never cut, and a body
/// read whole or dropped ends the watch.
async fn body_overdue(conn: &Conn, shared: &Shared, head: u64, timeout: Duration) {
    let head_at = shared.at(head);
    let deadline = head_at + timeout;
    let mut check = (head_at + BODY_RATE_GRACE).min(deadline);
    loop {
        tokio::time::sleep_until(check).await;
        if conn.body_head.load(Ordering::Relaxed) != head {
            return std::future::pending().await;
        }
        let now = Instant::now();
        if conn.body_waiting.load(Ordering::Relaxed) {
            let elapsed = now.saturating_duration_since(head_at);
            let due = u128::from(MIN_BODY_RATE) * elapsed.as_millis() / 1000;
            let received = u128::from(conn.body_received.load(Ordering::Relaxed));
            if now >= deadline || received < due {
                return;
            }
        }
        let left = deadline.saturating_duration_since(now);
        let step = Duration::from_secs(1);
        check = now + if left.is_zero() { step } else { left.min(step) };
    }
}

/// `408 Request Timeout` in the API's error shape, closing the connection
/// (the rest of the body is never read).
fn request_timeout(timeout: Duration) -> Response<Body> {
    let body = format!(
        r#"{{"error":"request_timeout","error_description":"the request body did not arrive within {} s, or arrived slower than {} bytes a second; send the body with the request"}}"#,
        timeout.as_secs_f64(),
        MIN_BODY_RATE
    );
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body, telling the connection whether the handler is waiting
/// on the client for it and how much has come.
struct AwaitedBody {
    incoming: Incoming,
    conn: Arc<Conn>,
    /// The stamp of its head: marks the connection's body state as this
    /// body's.
    head: u64,
}

impl AwaitedBody {
    fn finish(&self) {
        let conn = &self.conn;
        if conn
            .body_head
            .compare_exchange(self.head, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            conn.body_waiting.store(false, Ordering::Relaxed);
        }
    }
}

impl hyper::body::Body for AwaitedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.incoming).poll_frame(cx);
        let conn = &self.conn;
        match &polled {
            Poll::Pending => conn.body_waiting.store(true, Ordering::Relaxed),
            Poll::Ready(Some(Ok(frame))) => {
                conn.body_waiting.store(false, Ordering::Relaxed);
                if let Some(data) = frame.data_ref() {
                    conn.body_received
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                if self.incoming.is_end_stream() {
                    self.finish();
                }
            }
            Poll::Ready(_) => self.finish(),
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

impl Drop for AwaitedBody {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A request being served; when the last one on the connection is done,
/// the connection is idle.
struct InFlight {
    conn: Arc<Conn>,
    shared: Arc<Shared>,
    /// Its answer has started to go out ([`answer`]).
    answering: bool,
}

impl InFlight {
    fn begin(conn: Arc<Conn>, shared: Arc<Shared>) -> InFlight {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        let since = conn.since.load(Ordering::Relaxed);
        conn.enter(BUSY, since);
        InFlight {
            conn,
            shared,
            answering: false,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.answering {
            self.conn.answers_open.fetch_sub(1, Ordering::Relaxed);
        }
        if self.conn.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            let now = self.shared.since_epoch(Instant::now());
            self.conn.enter(IDLE, now);
        }
    }
}

/// A response body that ends its request's [`InFlight`] once written (or
/// dropped unwritten), and is read no further than [`WRITE_BUFFER`] ahead
/// of the socket.
struct TrackedBody {
    body: Body,
    guard: Option<InFlight>,
    conn: Arc<Conn>,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if self.conn.unsent.load(Ordering::Relaxed) >= WRITE_BUFFER {
            // hyper writes what it holds next, and the write that brings
            // `unsent` down wakes this task (`Watched::wrote`).
            self.conn.parked.store(true, Ordering::Relaxed);
            return Poll::Pending;
        }
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = i64::try_from(data.len()).unwrap_or(i64::MAX);
                    self.conn.unsent.fetch_add(n, Ordering::Relaxed);
                }
            }
            Poll::Ready(None) => self.guard = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Counts events and says when to report them: the first at once, then at
/// most one report per `every`, carrying how many happened since the last.
#[derive(Debug)]
struct Throttle {
    every: Duration,
    last_report: Option<Instant>,
    pending: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            every: LOG_EVERY,
            last_report: None,
            pending: 0,
        }
    }
}

impl Throttle {
    /// `n` more events at `now`; the count to report now, if it is time.
    fn record(&mut self, now: Instant, n: u64) -> Option<u64> {
        self.pending += n;
        self.due(now)
    }

    /// The count not yet reported, if there is one and it is time.
    fn due(&mut self, now: Instant) -> Option<u64> {
        if self.pending == 0 {
            return None;
        }
        if self.last_report.is_some_and(|last| now < last + self.every) {
            return None;
        }
        self.last_report = Some(now);
        Some(std::mem::take(&mut self.pending))
    }
}

/// The accept loop's rate-limited log lines.
#[derive(Default)]
struct Logs {
    accept_errors: Throttle,
    last_accept_error: Option<io::Error>,
    evicted: Throttle,
    refused: Throttle,
}

impl Logs {
    fn accept_error(&mut self, err: io::Error, now: Instant) {
        self.last_accept_error = Some(err);
        if let Some(count) = self.accept_errors.record(now, 1) {
            self.report_accept_errors(count);
        }
    }

    fn evicted(&mut self, now: Instant, n: usize, max: usize) {
        if let Some(count) = self.evicted.record(now, n as u64) {
            report_evicted(count, max);
        }
    }

    fn refused(&mut self, now: Instant, max: usize) {
        if let Some(count) = self.refused.record(now, 1) {
            report_refused(count, max);
        }
    }

    fn flush(&mut self, now: Instant, max: usize) {
        if let Some(count) = self.accept_errors.due(now) {
            self.report_accept_errors(count);
        }
        if let Some(count) = self.evicted.due(now) {
            report_evicted(count, max);
        }
        if let Some(count) = self.refused.due(now) {
            report_refused(count, max);
        }
    }

    fn report_accept_errors(&self, count: u64) {
        if let Some(err) = &self.last_accept_error {
            tracing::error!(count, "accept error: {err} ({count} since the last report)");
        }
    }
}

fn report_evicted(count: u64, max: usize) {
    tracing::warn!(
        count,
        max_connections = max,
        "at the connection cap: closed {count} connection(s) that were waiting on their client (no complete request head, idle, a body not coming, an answer not read), to make room for new ones"
    );
}

fn report_refused(count: u64, max: usize) {
    tracing::warn!(
        count,
        max_connections = max,
        "at the connection cap with every connection being served: closed {count} new connection(s) at once"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_is_half_the_limit_less_the_reserve_within_bounds() {
        assert_eq!(default_max_connections(20_000), 9_936);
        assert_eq!(default_max_connections(1_024), 448);
        assert_eq!(
            default_max_connections(65_536),
            DEFAULT_MAX_CONNECTIONS_CEILING
        );
        assert_eq!(
            default_max_connections(u64::MAX),
            DEFAULT_MAX_CONNECTIONS_CEILING
        );
        assert_eq!(default_max_connections(100), DEFAULT_MAX_CONNECTIONS_FLOOR);
        assert_eq!(default_max_connections(0), DEFAULT_MAX_CONNECTIONS_FLOOR);
    }

    #[test]
    fn the_descriptor_limit_can_be_read() {
        assert!(descriptor_limit().unwrap() > 0);
    }

    #[test]
    fn a_throttle_reports_the_first_event_then_at_most_once_a_second() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut throttle = Throttle::default();
        assert_eq!(throttle.due(at(0)), None);
        assert_eq!(throttle.record(at(0), 1), Some(1));
        for ms in 1..=998 {
            assert_eq!(throttle.record(at(ms), 1), None, "at {ms} ms");
        }
        assert_eq!(throttle.record(at(999), 2), None);
        assert_eq!(throttle.due(at(999)), None);
        // The errors of that second, reported once, by the next event or
        // the periodic flush, whichever comes first.
        assert_eq!(throttle.record(at(1_000), 1), Some(1_001));
        assert_eq!(throttle.record(at(1_500), 1), None);
        assert_eq!(throttle.due(at(1_999)), None);
        assert_eq!(throttle.due(at(2_000)), Some(1));
        assert_eq!(throttle.due(at(5_000)), None);
        assert_eq!(throttle.record(at(5_000), 1), Some(1));
    }
}
