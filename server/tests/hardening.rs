//! Issue 15 over real sockets on 127.0.0.1: the connection loop
//! (`server::edge::serve`) under half-open floods, slow heads, idle keep-alive
//! connections, a full cap and shutdown, with the descriptor limit of this
//! test process lowered so the flood runs into it fast; the body limit (413
//! with the JSON error, the rest unread) and `Strict-Transport-Security`
//! through the app's router; and the server binary refusing, or with
//! `DEV_IDP=1` warning about, an embedded development server others could
//! reach.
//!
//! Deadlines are a second or two here (the serve options are the
//! function's arguments), so each test takes a few seconds.
//!
//! Run: `cargo test -p server --test hardening`

#[path = "common/bearer_fixtures.rs"]
mod fixtures;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use app::api::ApiError;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use fixtures::*;
use leptos::prelude::LeptosOptions;
use server::bearer::ManualClock;
use server::browser_auth::BrowserAuth;
use server::config::Config;
use server::edge::serve::{ServeOptions, Server, Stats, StatsHandle, STUCK_GRACE};
use server::RouterSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, RwLock};
use tokio::time::Instant;
use tower::ServiceExt;

/// The descriptor limit every test of this binary runs under.
const FD_LIMIT: u64 = 1024;

/// The flood takes most of the descriptors: it runs alone, the other tests
/// share.
static DESCRIPTORS: RwLock<()> = RwLock::const_new(());

/// Lowers this process's descriptor limit to [`FD_LIMIT`] (or the hard
/// limit, if lower), once, before any test opens a socket; returns it.
fn lowered_fd_limit() -> u64 {
    static LOWER: Once = Once::new();
    LOWER.call_once(|| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit read and write only the struct
        // given, which outlives the calls.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
            limit.rlim_cur = limit.rlim_max.min(FD_LIMIT);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    });
    server::edge::serve::descriptor_limit().unwrap()
}

/// A small app: `POST /api/health` reads its body and answers at once,
/// `GET /slow` after a second, `GET /big` with [`BIG`] bytes.
fn small_app() -> Router {
    Router::new()
        .route("/api/health", post(|_: axum::body::Bytes| async { "ok" }))
        .route("/big", get(|| async { vec![b'x'; BIG] }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                "done"
            }),
        )
}

/// The size of `GET /big`: far more than the socket buffers of both ends
/// on loopback hold for a client with a small receive buffer.
const BIG: usize = 8 << 20;

fn options(header_read_timeout: f64, keepalive_idle: f64, max_connections: usize) -> ServeOptions {
    ServeOptions {
        header_read_timeout: Duration::from_secs_f64(header_read_timeout),
        keepalive_idle: Duration::from_secs_f64(keepalive_idle),
        body_read_timeout: Duration::from_secs(10),
        send_timeout: Duration::from_secs(30),
        max_connections,
        shutdown_grace: None,
    }
}

/// [`options`] with the body and send deadlines given, in seconds.
fn slow_client_options(body: f64, send: f64, max_connections: usize) -> ServeOptions {
    ServeOptions {
        body_read_timeout: Duration::from_secs_f64(body),
        send_timeout: Duration::from_secs_f64(send),
        ..options(10.0, 30.0, max_connections)
    }
}

struct Running {
    addr: SocketAddr,
    stats: StatsHandle,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(app: Router, options: ServeOptions) -> Running {
        let listener = server::edge::serve::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let server = Server::new(listener, options);
        let addr = server.local_addr().unwrap();
        let stats = server.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(app, async {
            let _ = stopped.await;
        }));
        Running {
            addr,
            stats,
            stop: Some(stop),
            task,
        }
    }

    fn stats(&self) -> Stats {
        self.stats.get()
    }

    /// The stats once `done` holds of them (within a second): a closed
    /// connection is counted just after its socket is closed.
    async fn settled(&self, done: impl Fn(&Stats) -> bool) -> Stats {
        let until = Instant::now() + Duration::from_secs(1);
        loop {
            let stats = self.stats();
            if done(&stats) {
                return stats;
            }
            assert!(Instant::now() < until, "{stats:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The stats once `done` holds of them, waiting up to `limit`.
    async fn settled_within(&self, limit: Duration, done: impl Fn(&Stats) -> bool) -> Stats {
        let until = Instant::now() + limit;
        loop {
            let stats = self.stats();
            if done(&stats) {
                return stats;
            }
            assert!(Instant::now() < until, "{stats:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    /// A connection whose receive buffer is 4 KiB: a client that reads
    /// nothing stops the server's writes almost at once.
    async fn connect_small_window(&self) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(self.addr).await.unwrap()
    }

    /// Sends `request` on a new connection and reads the answer.
    async fn request(&self, request: &str) -> Answer {
        let mut stream = self.connect().await;
        stream.write_all(request.as_bytes()).await.unwrap();
        read_answer(&mut stream).await
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const HEALTH: &str = "POST /api/health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const HEALTH_KEEP_ALIVE: &str =
    "POST /api/health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n";
/// The flood: a request line and one header, then nothing.
const HALF_OPEN: &str = "POST /api/whoami HTTP/1.1\r\nHost: localhost\r\n";
/// Issue 23's slow-body flood: a whole head announcing 60,000 bytes.
const SLOW_BODY_HEAD: &str =
    "POST /api/health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 60000\r\n\r\n";
/// Issue 23's slow reader: the big answer, asked for three times at once.
const BIG_PIPELINED: &str = "GET /big HTTP/1.1\r\nHost: localhost\r\n\r\nGET /big HTTP/1.1\r\nHost: localhost\r\n\r\nGET /big HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One HTTP/1.1 answer off `stream`: the head, then a `Content-Length`
/// body, or everything up to the close.
async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "closed before a whole answer: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8(bytes[..head_end].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    let mut answer = Answer {
        status,
        head,
        body: bytes[head_end..].to_vec(),
    };
    match answer
        .header("content-length")
        .map(|v| v.parse::<usize>().unwrap())
    {
        Some(length) => {
            while answer.body.len() < length {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed inside the body");
                answer.body.extend_from_slice(&buf[..n]);
            }
        }
        None => {
            stream.read_to_end(&mut answer.body).await.unwrap();
        }
    }
    answer
}

/// Waits up to `limit` for the server to close `stream` (end of stream or
/// reset); returns what it sent before, or `None` if it is still open.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    let until = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(received),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Whether the server has closed `stream`, without waiting.
fn is_closed(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 16];
    match stream.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(err) => err.kind() != std::io::ErrorKind::WouldBlock,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_flood_past_the_cap_leaves_normal_requests_answered_and_is_closed_in_time() {
    let limit = lowered_fd_limit();
    let _alone = DESCRIPTORS.write().await;
    // The client's sockets and the server's share this process's table:
    // the flood takes 5/8 of it and the server at most 1/4, so the server
    // must stay under its cap for both to fit; without the cap it would
    // accept the whole flood and run out (5/8 + 5/8 > 1).
    let cap = (limit / 4) as usize;
    let flood = (limit * 5 / 8) as usize;
    let timeout = 2.0;
    let server = Running::start(small_app(), options(timeout, 30.0, cap)).await;

    let started = Instant::now();
    let mut half_open = Vec::with_capacity(flood);
    for _ in 0..flood {
        let mut stream = server.connect().await;
        stream.write_all(HALF_OPEN.as_bytes()).await.unwrap();
        half_open.push(stream);
    }
    let flooded = started.elapsed();

    for _ in 0..5 {
        let asked = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(1), server.request(HEALTH))
            .await
            .expect("a normal request during the flood must be answered within 1 s");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, b"ok");
        assert!(asked.elapsed() < Duration::from_secs(1));
    }

    let stats = server.stats();
    assert_eq!(stats.accept_errors, 0, "{stats:?}");
    assert!(stats.open <= cap, "{stats:?}");
    assert!(
        stats.evicted as usize >= flood - cap,
        "the flood past the cap must have been made room for: {stats:?}"
    );

    // Every half-open connection is closed by the server: those beyond the
    // cap to make room, the rest at the header deadline.
    let deadline = started + Duration::from_secs_f64(timeout) + flooded + Duration::from_secs(2);
    for (i, stream) in half_open.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let sent = closed_within(stream, left)
            .await
            .unwrap_or_else(|| panic!("half-open connection {i} still open"));
        assert!(sent.is_empty(), "connection {i} was answered");
    }
    // A connection is counted just after its socket closes.
    let stats = server
        .settled(|s| s.head_timeouts + s.evicted == flood as u64)
        .await;
    assert_eq!(stats.accept_errors, 0, "{stats:?}");
    assert_eq!(stats.open, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_queues_a_burst_of_new_connections_beyond_128() {
    lowered_fd_limit();
    let _alone = DESCRIPTORS.write().await;
    // The kernel caps the queue at net.core.somaxconn.
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .map_or(4096, |v| v.trim().parse().unwrap());
    let burst = somaxconn.min(600) - 10;
    if burst <= 128 {
        eprintln!("net.core.somaxconn is {somaxconn}: nothing to show past 128");
        return;
    }
    // Bound, never accepting: the queue alone holds the burst. With
    // TcpListener::bind's 128, the connections past it would hang.
    let listener = server::edge::serve::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let connects = (0..burst)
        .map(|_| tokio::time::timeout(Duration::from_millis(900), TcpStream::connect(addr)));
    let connected = futures_join_all(connects).await;
    let queued = connected.iter().filter(|c| matches!(c, Ok(Ok(_)))).count();
    assert_eq!(queued, burst);
    drop(listener);
}

/// Awaits every future, concurrently, in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_below_the_cap_are_closed_at_the_header_deadline() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    let server = Running::start(small_app(), options(1.0, 30.0, 100)).await;
    let opened = Instant::now();
    let mut half_open = Vec::new();
    for _ in 0..20 {
        let mut stream = server.connect().await;
        stream.write_all(HALF_OPEN.as_bytes()).await.unwrap();
        half_open.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(half_open.iter().all(|s| !is_closed(s)), "closed too early");
    for stream in &mut half_open {
        let sent = closed_within(stream, Duration::from_secs(2))
            .await
            .expect("still open after the header deadline");
        assert!(sent.is_empty());
    }
    let elapsed = opened.elapsed();
    assert!(elapsed < Duration::from_millis(2_000), "{elapsed:?}");
    server.settled(|s| s.head_timeouts == 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_sent_one_byte_a_second_is_closed_at_the_deadline() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    let server = Running::start(small_app(), options(2.0, 30.0, 100)).await;
    let stream = server.connect().await;
    let opened = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let dribble = tokio::spawn(async move {
        for byte in HEALTH.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut received = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut received))
        .await
        .expect("still open 5 s into a head sent one byte a second");
    let elapsed = opened.elapsed();
    // Closed (end of stream or reset) without an answer, at the deadline.
    assert!(closed.is_err() || received.is_empty(), "{received:?}");
    assert!(
        elapsed >= Duration::from_millis(1_900) && elapsed < Duration::from_millis(3_500),
        "{elapsed:?}"
    );
    dribble.abort();
    server.settled(|s| s.head_timeouts == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_gets_the_keepalive_timeout_and_its_next_head_the_header_one() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    let server = Running::start(small_app(), options(1.0, 4.0, 100)).await;

    // Idle after one request: open past the header timeout, closed at the
    // keep-alive one.
    let mut idle = server.connect().await;
    idle.write_all(HEALTH_KEEP_ALIVE.as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut idle).await.status, 200);
    let idle_since = Instant::now();

    // A second head begun after one request, then stalled: closed at the
    // header timeout from its first byte, not after the keep-alive one.
    let mut stalled = server.connect().await;
    stalled
        .write_all(HEALTH_KEEP_ALIVE.as_bytes())
        .await
        .unwrap();
    assert_eq!(read_answer(&mut stalled).await.status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stalled.write_all(b"POST /api/he").await.unwrap();
    let began = Instant::now();
    assert!(closed_within(&mut stalled, Duration::from_secs(3))
        .await
        .expect("a stalled second head outlived the header timeout")
        .is_empty());
    let after = began.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_millis(2_500),
        "{after:?}"
    );

    tokio::time::sleep_until(idle_since + Duration::from_secs(3)).await;
    assert!(
        !is_closed(&idle),
        "idle closed before the keep-alive timeout"
    );
    assert!(closed_within(&mut idle, Duration::from_secs(2))
        .await
        .expect("idle past the keep-alive timeout")
        .is_empty());
    let idle_for = idle_since.elapsed();
    assert!(
        idle_for >= Duration::from_millis(3_900) && idle_for < Duration::from_millis(5_000),
        "{idle_for:?}"
    );
    server
        .settled(|s| (s.idle_timeouts, s.head_timeouts) == (1, 1))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_a_new_connection_takes_the_slot_of_the_oldest_half_open_one() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    let server = Running::start(small_app(), options(10.0, 30.0, 3)).await;
    let mut half_open = Vec::new();
    for _ in 0..3 {
        let mut stream = server.connect().await;
        stream.write_all(HALF_OPEN.as_bytes()).await.unwrap();
        half_open.push(stream);
        // Accepted in this order, so the first is the oldest.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let asked = Instant::now();
    let answer = server.request(HEALTH).await;
    assert_eq!(answer.status, 200);
    assert!(asked.elapsed() < Duration::from_secs(1));
    assert!(closed_within(&mut half_open[0], Duration::from_millis(500))
        .await
        .is_some());
    assert!(!is_closed(&half_open[1]) && !is_closed(&half_open[2]));
    let stats = server.stats();
    assert_eq!((stats.evicted, stats.refused), (1, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_with_every_connection_serving_a_request_a_new_one_is_closed_at_once() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    let server = Running::start(small_app(), options(10.0, 30.0, 2)).await;
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut stream = server.connect().await;
        stream
            .write_all(b"GET /slow HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        busy.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = server.connect().await;
    let _ = extra.write_all(HEALTH.as_bytes()).await;
    let sent = closed_within(&mut extra, Duration::from_millis(500))
        .await
        .expect("a connection past a busy cap must be closed at once");
    assert!(sent.is_empty());
    for stream in &mut busy {
        let answer = read_answer(stream).await;
        assert_eq!((answer.status, answer.body.as_slice()), (200, &b"done"[..]));
    }
    let stats = server.stats();
    assert_eq!((stats.refused, stats.evicted), (1, 0), "{stats:?}");
    // Once they are done there is room again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.request(HEALTH).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_closes_idle_connections_and_lets_requests_finish() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    let mut server = Running::start(small_app(), options(10.0, 30.0, 100)).await;
    let mut idle = server.connect().await;
    idle.write_all(HEALTH_KEEP_ALIVE.as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut idle).await.status, 200);
    let mut busy = server.connect().await;
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.stop.take().unwrap().send(()).unwrap();
    assert!(
        closed_within(&mut idle, Duration::from_millis(500))
            .await
            .is_some(),
        "the idle connection must be closed at once"
    );
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "no longer accepting"
    );
    let answer = read_answer(&mut busy).await;
    assert_eq!((answer.status, answer.body.as_slice()), (200, &b"done"[..]));
    tokio::time::timeout(Duration::from_secs(2), &mut server.task)
        .await
        .expect("run returns once the request in flight is done")
        .unwrap();
}

/// Asserts `answer` is the connection loop's `408`, closing the connection.
fn assert_request_timeout(answer: &Answer) {
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(body["error"], "request_timeout");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("send the body with the request"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_answered_408_at_its_deadline_and_its_connection_closed() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    let server = Running::start(small_app(), slow_client_options(3.0, 30.0, 100)).await;
    let mut stream = server.connect().await;
    stream.write_all(SLOW_BODY_HEAD.as_bytes()).await.unwrap();
    let started = Instant::now();
    // Fast enough for the minimum rate (4 KiB at once, then 4 KiB a
    // second), too slow to finish 60,000 bytes before the deadline.
    let feeding = async {
        for _ in 0..10 {
            if stream.write_all(&[b'a'; 2048]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let (stats, ()) = tokio::join!(
        server.settled_within(Duration::from_secs(5), |s| s.body_timeouts == 1),
        feeding
    );
    let cut_after = started.elapsed();
    assert!(
        cut_after >= Duration::from_millis(2_900) && cut_after < Duration::from_millis(4_200),
        "cut after {cut_after:?}"
    );
    assert_request_timeout(&read_answer(&mut stream).await);
    assert!(closed_within(&mut stream, Duration::from_millis(500))
        .await
        .is_some());
    assert_eq!(stats.evicted + stats.send_timeouts, 0, "{stats:?}");
    // A body that comes with its head is untouched.
    let mut fine = server.connect().await;
    fine.write_all(
        b"POST /api/health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await
    .unwrap();
    assert_eq!(read_answer(&mut fine).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_is_cut_at_the_minimum_rate_long_before_its_deadline() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    let server = Running::start(small_app(), slow_client_options(30.0, 30.0, 100)).await;
    let mut stream = server.connect().await;
    stream.write_all(SLOW_BODY_HEAD.as_bytes()).await.unwrap();
    let started = Instant::now();
    // A byte every 200 ms: each one would renew a per-read timeout.
    let trickle = async {
        for _ in 0..50 {
            if stream.write_all(b"a").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (stats, ()) = tokio::select! {
        stats = server.settled_within(Duration::from_secs(5), |s| s.body_timeouts == 1) => (stats, ()),
        () = trickle => panic!("never cut"),
    };
    let cut_after = started.elapsed();
    // BODY_RATE_GRACE (2 s) is when the rate is first checked.
    assert!(
        cut_after >= Duration::from_millis(1_900) && cut_after < Duration::from_millis(3_200),
        "cut after {cut_after:?}"
    );
    assert_eq!(stats.body_timeouts, 1);
    assert_request_timeout(&read_answer(&mut stream).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_busy_with_its_own_work_is_not_cut_by_the_body_deadline() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    // Reads its body, then works for longer than the body deadline.
    let app = Router::new().route(
        "/work",
        post(|_: axum::body::Bytes| async {
            tokio::time::sleep(Duration::from_millis(2_500)).await;
            "worked"
        }),
    );
    let server = Running::start(app, slow_client_options(1.0, 30.0, 100)).await;
    let answer = server
        .request("POST /work HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
        .await;
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (200, &b"worked"[..])
    );
    assert_eq!(server.stats().body_timeouts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_cut_at_the_send_deadline_which_pipelined_requests_do_not_reset() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    let server = Running::start(small_app(), slow_client_options(10.0, 2.0, 100)).await;
    let mut reader = server.connect_small_window().await;
    reader.write_all(BIG_PIPELINED.as_bytes()).await.unwrap();
    let started = Instant::now();
    let stats = server
        .settled_within(Duration::from_secs(4), |s| s.send_timeouts == 1)
        .await;
    let cut_after = started.elapsed();
    assert!(
        cut_after >= Duration::from_millis(1_900) && cut_after < Duration::from_millis(3_000),
        "cut after {cut_after:?}"
    );
    assert_eq!(stats.open, 0, "{stats:?}");
    // What reached the client is a part of the first answer, then the end.
    let received = closed_within(&mut reader, Duration::from_secs(2))
        .await
        .expect("closed");
    assert!(received.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(received.len() < BIG, "{} bytes", received.len());
    // A client that reads gets all three whole, each with a deadline of
    // its own once the one before is written.
    let mut patient = server.connect().await;
    patient.write_all(BIG_PIPELINED.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut all = Vec::new();
    let expected = 3 * BIG;
    let mut buf = vec![0u8; 64 * 1024];
    while all.len() < expected {
        let n = patient.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed after {} bytes", all.len());
        all.extend_from_slice(&buf[..n]);
    }
    let heads = all
        .windows(17)
        .filter(|w| w == b"HTTP/1.1 200 OK\r\n")
        .count();
    assert_eq!(heads, 3);
    assert_eq!(server.stats().send_timeouts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_a_flood_of_slow_bodies_does_not_keep_a_new_client_out() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    let cap = 40;
    let server = Running::start(small_app(), slow_client_options(10.0, 30.0, cap)).await;
    let mut flood = Vec::new();
    for _ in 0..cap {
        let mut stream = server.connect().await;
        stream.write_all(SLOW_BODY_HEAD.as_bytes()).await.unwrap();
        stream.write_all(b"a").await.unwrap();
        flood.push(stream);
    }
    server.settled(|s| s.open == cap).await;
    // Past the grace, each of them is waiting on its client.
    tokio::time::sleep(STUCK_GRACE + Duration::from_millis(200)).await;
    for _ in 0..5 {
        let asked = Instant::now();
        let answer = server.request(HEALTH).await;
        assert_eq!(answer.status, 200);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{:?}",
            asked.elapsed()
        );
    }
    let stats = server.stats();
    // Each answered request's connection closes after it, so one slot
    // made by eviction serves them all in turn.
    assert!(stats.evicted >= 1, "{stats:?}");
    assert_eq!((stats.refused, stats.body_timeouts), (0, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_a_flood_of_slow_readers_does_not_keep_a_new_client_out() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    let cap = 20;
    let server = Running::start(small_app(), slow_client_options(10.0, 30.0, cap)).await;
    let mut flood = Vec::new();
    for _ in 0..cap {
        let mut stream = server.connect_small_window().await;
        stream.write_all(BIG_PIPELINED.as_bytes()).await.unwrap();
        flood.push(stream);
    }
    server.settled(|s| s.open == cap).await;
    tokio::time::sleep(STUCK_GRACE + Duration::from_millis(200)).await;
    let asked = Instant::now();
    let answer = server.request(HEALTH).await;
    assert_eq!(answer.status, 200);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    let stats = server.stats();
    assert!(stats.evicted >= 1 && stats.refused == 0, "{stats:?}");
}

/// The app's router, as `main` builds it with `settings`.
async fn app_router(settings: RouterSettings) -> (Router, JwksServer) {
    let [k1, _, _] = keys();
    let issuer_server = JwksServer::start(jwks(&[k1])).await;
    let validator = validator_for(&issuer_server, Arc::new(ManualClock::starting_now())).await;
    let issuer = issuer_server.issuer();
    let config = browser_config(&issuer);
    let options = LeptosOptions::builder()
        .output_name("okta-implicit")
        .build();
    let router = server::app_router_with(
        options,
        validator.clone(),
        BrowserAuth::new(config, validator),
        settings,
    );
    (router, issuer_server)
}

/// A request body of `left` chunks of 16 KiB, counting those taken.
struct Chunks {
    left: usize,
    taken: Arc<AtomicUsize>,
}

impl hyper::body::Body for Chunks {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        self.left -= 1;
        self.taken.fetch_add(1, Ordering::SeqCst);
        let chunk = bytes::Bytes::from(vec![b'a'; 16 * 1024]);
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
    }
}

/// `chunks` chunks of 16 KiB, with no length: sent chunked.
fn chunked_body(chunks: usize) -> (Body, Arc<AtomicUsize>) {
    let taken = Arc::new(AtomicUsize::new(0));
    let body = Body::new(Chunks {
        left: chunks,
        taken: taken.clone(),
    });
    (body, taken)
}

async fn send(
    router: &Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (parts.status, parts.headers, body.to_vec())
}

fn api_post(path: &str) -> axum::http::request::Builder {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
}

fn assert_payload_too_large(
    (status, headers, body): &(StatusCode, axum::http::HeaderMap, Vec<u8>),
    limit: u64,
) {
    assert_eq!(*status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert!(headers.get(header::WWW_AUTHENTICATE).is_none());
    let err: ApiError = serde_json::from_slice(body).unwrap();
    assert_eq!(err, ApiError::PayloadTooLarge { limit });
    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"error": "payload_too_large", "limit": limit})
    );
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_answered_413_json_without_being_read() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    let (router, _issuer) = app_router(RouterSettings::default()).await;
    // The 200 MB POST; before, a server function read 2 MB of it
    // and answered 400. Also on a protected function without a token: the
    // size is refused first.
    for path in ["/api/health", "/api/whoami"] {
        let (body, taken) = chunked_body(200 * 64);
        let request = api_post(path)
            .header(header::CONTENT_LENGTH, "200000000")
            .body(body)
            .unwrap();
        let answer = send(&router, request).await;
        assert_payload_too_large(&answer, 65_536);
        assert_eq!(answer.1[header::CONNECTION], "close");
        assert_eq!(answer.1[header::CACHE_CONTROL], "no-store");
        assert_eq!(taken.load(Ordering::SeqCst), 0, "{path}: the body was read");
    }
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_answered_413_json_once_past_it() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    let (router, _issuer) = app_router(RouterSettings::default()).await;
    let (body, taken) = chunked_body(100);
    let answer = send(&router, api_post("/api/health").body(body).unwrap()).await;
    assert_payload_too_large(&answer, 65_536);
    // 64 KiB is four chunks; the fifth goes past it, and nothing more is read.
    assert_eq!(taken.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn bodies_within_the_limit_still_reach_the_functions() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    let (router, _issuer) = app_router(RouterSettings::default()).await;
    let empty = api_post("/api/health")
        .header(header::CONTENT_LENGTH, "0")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&router, empty).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"\"ok\""[..]));
    let (chunked, _) = chunked_body(0);
    let (status, _, _) = send(&router, api_post("/api/health").body(chunked).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    // With a token-protected function the refusal is still the bearer
    // layer's, not the size's.
    let (status, _, _) = send(
        &router,
        api_post("/api/whoami").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_configured_limit_is_the_one_applied() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    let settings = RouterSettings {
        body_limit: 100_000,
        ..RouterSettings::default()
    };
    let (router, _issuer) = app_router(settings).await;
    // 96 KiB: over the default, within this limit (and under axum's 2 MB
    // default too, so nothing else cuts in).
    let (body, _) = chunked_body(6);
    let (status, _, _) = send(&router, api_post("/api/health").body(body).unwrap()).await;
    assert_ne!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (body, _) = chunked_body(7);
    let answer = send(&router, api_post("/api/health").body(body).unwrap()).await;
    assert_payload_too_large(&answer, 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_socket_the_413_comes_before_the_rest_of_the_body_is_sent() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    let (router, _issuer) = app_router(RouterSettings::default()).await;
    let server = Running::start(router, options(10.0, 30.0, 100)).await;
    let mut stream = server.connect().await;
    let head = "POST /api/health HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200000000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b'a'; 1000]).await.unwrap();
    // Nothing more is sent: the answer must not wait for the 200 MB.
    let answer = tokio::time::timeout(Duration::from_secs(2), read_answer(&mut stream))
        .await
        .expect("the 413 must come without the rest of the body");
    assert_eq!(answer.status, 413);
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let err: ApiError = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(err, ApiError::PayloadTooLarge { limit: 65_536 });
    assert!(
        closed_within(&mut stream, Duration::from_secs(1))
            .await
            .is_some(),
        "the connection, with its body unread, must be closed"
    );
}

fn config(vars: &[(&str, &str)]) -> Config {
    Config::from_lookup(
        |name| {
            vars.iter()
                .find(|(var, _)| *var == name)
                .map(|(_, value)| value.to_string())
        },
        "127.0.0.1:3000".parse().unwrap(),
    )
    .unwrap()
}

/// The `Strict-Transport-Security` of a page, a public function, a
/// refusal by the bearer layer and one by the body limit.
async fn hsts_of_every_kind_of_answer(config: &Config) -> Vec<Option<String>> {
    let (router, _issuer) = app_router(RouterSettings::from_config(config)).await;
    let (oversized, _) = chunked_body(5);
    let requests = [
        Request::get("/").body(Body::empty()).unwrap(),
        api_post("/api/health").body(Body::empty()).unwrap(),
        api_post("/api/whoami").body(Body::empty()).unwrap(),
        api_post("/api/health").body(oversized).unwrap(),
    ];
    let mut found = Vec::new();
    for request in requests {
        let (_, headers, _) = send(&router, request).await;
        found.push(
            headers
                .get(header::STRICT_TRANSPORT_SECURITY)
                .map(|v| v.to_str().unwrap().to_string()),
        );
    }
    found
}

#[tokio::test]
async fn an_https_public_origin_puts_hsts_on_every_answer() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    let https = config(&[("PUBLIC_ORIGIN", "https://app.example.com")]);
    assert_eq!(
        hsts_of_every_kind_of_answer(&https).await,
        vec![Some("max-age=31536000".to_string()); 4]
    );
    let with_subdomains = config(&[
        ("PUBLIC_ORIGIN", "https://app.example.com"),
        ("HSTS_INCLUDE_SUBDOMAINS", "1"),
    ]);
    assert_eq!(
        hsts_of_every_kind_of_answer(&with_subdomains).await,
        vec![Some("max-age=31536000; includeSubDomains".to_string()); 4]
    );
}

#[tokio::test]
async fn an_http_public_origin_sends_no_hsts() {
    lowered_fd_limit();
    let _shared = DESCRIPTORS.read().await;
    for origin in ["http://localhost:3000", "http://app.example.com"] {
        let http = config(&[("PUBLIC_ORIGIN", origin), ("HSTS_INCLUDE_SUBDOMAINS", "1")]);
        assert_eq!(
            hsts_of_every_kind_of_answer(&http).await,
            vec![None; 4],
            "{origin}"
        );
    }
}

/// The server binary, started with nothing but `vars` in its environment,
/// from an empty folder (so no `.env` is read).
fn server_command(vars: &[(&str, &str)]) -> Command {
    let dir = std::env::temp_dir().join(format!("hardening-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    command
        .current_dir(dir)
        .env_clear()
        .env("LEPTOS_OUTPUT_NAME", "okta-implicit")
        .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs the server until it exits (within 30 s): its status and standard
/// error.
fn refused_start(vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = server_command(vars).spawn().unwrap();
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            return (status.code(), String::from_utf8(output.stderr).unwrap());
        }
        if started.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("the server did not stop within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn without_issuer_the_server_refuses_the_dev_server_behind_a_public_origin() {
    lowered_fd_limit();
    let (status, stderr) = refused_start(&[
        ("PUBLIC_ORIGIN", "https://app.example.com"),
        ("DEV_IDP_ADDR", "127.0.0.1:0"),
    ]);
    assert_eq!(status, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "error: ISSUER is not set and the public origin https://app.example.com is not loopback: the embedded development authorization server would let anyone who reaches it sign in as its demo users"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("Set ISSUER"), "{stderr}");
}

#[test]
fn without_issuer_the_server_refuses_the_dev_server_on_an_address_others_reach() {
    lowered_fd_limit();
    let (status, stderr) = refused_start(&[("DEV_IDP_ADDR", "0.0.0.0:0")]);
    assert_eq!(status, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ISSUER is not set and DEV_IDP_ADDR 0.0.0.0:0 is not loopback"),
        "{stderr}"
    );
}

#[test]
fn with_dev_idp_1_the_server_starts_exposed_with_a_warning() {
    lowered_fd_limit();
    let mut child = server_command(&[
        ("PUBLIC_ORIGIN", "https://demo.example.com"),
        ("DEV_IDP_ADDR", "127.0.0.1:0"),
        ("DEV_IDP", "1"),
    ])
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let mut log = Vec::new();
    let listening = loop {
        match seen.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                let done = line.contains("listening on https://demo.example.com");
                log.push(line);
                if done {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening, "the server did not start: {log:#?}");
    let warning = log
        .iter()
        .find(|line| line.contains("DEV_IDP=1:"))
        .unwrap_or_else(|| panic!("no warning: {log:#?}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("demo users"), "{warning}");
}

#[test]
fn a_connection_cap_above_the_descriptor_limit_stops_start_up() {
    let limit = lowered_fd_limit();
    let (status, stderr) = refused_start(&[("MAX_CONNECTIONS", &(limit + 1).to_string())]);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: MAX_CONNECTIONS is not valid"),
        "{stderr}"
    );
}
