//! The server under test: the real release binary (`target/release/server`)
//! as a child process, a fresh one per case so no cache carries over, with
//! `ISSUER` pointing at the stub issuer and nothing from the checkout's
//! `.env`; start-up waits until `/api/health` answers. Also what the
//! harness reads about the process from `/proc`: peak and current RSS, and
//! the CPU time it has used.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::driver::Conn;
use crate::CLIENT_ID;

/// Settings of the server's that the harness's own environment must not
/// leak into the servers it starts (they would change what is expected).
pub const CLEARED_SETTINGS: [&str; 10] = [
    "AUDIENCE",
    "SCOPES",
    "RESPONSE_TYPE",
    "REDIRECT_URI",
    "POST_LOGOUT_REDIRECT_URI",
    "PUBLIC_ORIGIN",
    "TOKEN_LEEWAY_SECS",
    "DEV_IDP_ADDR",
    "DEV_IDP_CONFIG",
    "DEV_IDP_CONTROL",
];

/// How to start the server under test: the release binary, the site root it
/// serves static files from, and the work dir it runs in and logs to.
pub struct Launcher {
    pub bin: PathBuf,
    pub site_root: PathBuf,
    pub work: PathBuf,
}

impl Launcher {
    /// Starts the server against `issuer` on `addr`, its output to `log`,
    /// without waiting for it.
    pub fn spawn(&self, issuer: &str, addr: SocketAddr, log: &Path) -> Result<Child, String> {
        let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&self.bin);
        // Run in the harness's work dir so no `.env` of the checkout applies;
        // settings the server could read are removed or set here.
        cmd.current_dir(&self.work)
            .env("ISSUER", issuer)
            .env("CLIENT_ID", CLIENT_ID)
            .env("LEPTOS_SITE_ADDR", addr.to_string())
            .env("LEPTOS_OUTPUT_NAME", "okta-implicit")
            .env("LEPTOS_SITE_ROOT", &self.site_root)
            .env("LEPTOS_SITE_PKG_DIR", "pkg")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for var in CLEARED_SETTINGS {
            cmd.env_remove(var);
        }
        cmd.spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))
    }
}

/// A running server under test, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    /// Starts the release server against `issuer` and waits until it
    /// answers `/api/health` (at most 30 s).
    pub async fn start(launcher: &Launcher, issuer: &str, name: &str) -> Result<Server, String> {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            probe.local_addr().map_err(|e| e.to_string())?.port()
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let log = launcher.work.join(format!("{name}.log"));
        let child = launcher.spawn(issuer, addr, &log)?;
        let mut server = Server { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "server exited with {status} at start-up: {}",
                    server.log_tail()
                ));
            }
            if health_ok(addr).await {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "server did not answer within 30 s: {}",
                    server.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
    }

    /// The first log line containing `needle`, without the timestamp.
    pub fn log_line(&self, needle: &str) -> Option<String> {
        let file = std::fs::File::open(&self.log).ok()?;
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains(needle))
            .map(|l| {
                strip_ansi(&l)
                    .split_once(' ')
                    .map_or(l.clone(), |(_, rest)| rest.trim().to_string())
            })
    }

    pub fn log_count(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

async fn health_ok(addr: SocketAddr) -> bool {
    let Ok(Ok(mut conn)) = tokio::time::timeout(Duration::from_secs(1), Conn::open(addr)).await
    else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), conn.send("/api/health", None, None)).await,
        Ok(Ok((StatusCode::OK, _, _)))
    )
}

/// `VmHWM` (peak RSS) and `VmRSS` of `pid`, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU seconds `pid` has used, to the nanosecond: the sum over its
/// threads of `/proc/<pid>/task/<tid>/schedstat` (time on a CPU). The
/// process-wide `/proc/<pid>/stat` counts in 10 ms ticks, too coarse for
/// windows of a few hundred milliseconds; it is the fallback when the
/// task files cannot be read. A thread that exits during a window takes
/// its time with it: the server's threads (tokio's workers) live as long
/// as it does.
pub fn cpu_secs(pid: u32) -> f64 {
    threads_cpu_secs(pid).unwrap_or_else(|| stat_cpu_secs(pid))
}

fn threads_cpu_secs(pid: u32) -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let schedstat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += schedstat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}

/// The CPU seconds a `schedstat` file of `/proc` gives (its first field,
/// nanoseconds on the CPU); NaN when it cannot be read.
pub fn schedstat_secs(path: &str) -> f64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(f64::NAN, |ns| ns as f64 / 1e9)
}

fn stat_cpu_secs(pid: u32) -> f64 {
    // utime and stime, in ticks of 10 ms.
    (stat_field(pid, 14) + stat_field(pid, 15)) as f64 / 100.0
}

/// Field `n` (numbered from 1, as in proc(5)) of `/proc/<pid>/stat`, or 0
/// when it cannot be read.
pub fn stat_field(pid: u32, n: usize) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    field_of_stat(&stat, n)
}

fn field_of_stat(stat: &str, n: usize) -> u64 {
    // The command name (field 2) is in parentheses and may hold spaces:
    // count from the last ')', after which field 3 starts.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    n.checked_sub(3)
        .and_then(|i| rest.split_whitespace().nth(i))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stat_fields_past_a_command_name_with_spaces() {
        let stat = "4242 (tokio (w) 1) S 1 4242 4242 0 -1 4194560 777 0 0 0 350 25 0 0 20 0";
        assert_eq!(field_of_stat(stat, 3), 0); // "S" is not a number
        assert_eq!(field_of_stat(stat, 10), 777); // minflt
        assert_eq!(field_of_stat(stat, 14), 350); // utime
        assert_eq!(field_of_stat(stat, 15), 25); // stime
        assert_eq!(field_of_stat(stat, 99), 0);
        assert_eq!(field_of_stat("", 14), 0);
    }
}
