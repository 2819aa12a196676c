//! `--perf`: `perf record` attached to the server under test while it
//! serves one kind of traffic alone (case 3, `cold.rs`), with the
//! software CPU clock (no hardware counters in this VM) and DWARF call
//! graphs (the release binary has no frame pointers, but its unwind
//! tables are enough for perf). Read the result with
//! `perf report -i target/load/perf-<case>-run<N>.data --no-children`.
//!
//! perf is Debian's `linux-perf`; sampling costs the server CPU, so the
//! figures of a case run with `--perf` come from the windows before it,
//! never from the profiled phase.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `perf record`.
pub struct Recording {
    child: Child,
}

impl Recording {
    /// Attaches `perf record` to `pid`, writing to `out`.
    pub fn start(pid: u32, out: &Path) -> Result<Recording, String> {
        let child = Command::new("perf")
            .args([
                "record",
                "-e",
                "cpu-clock",
                "-F",
                "2000",
                "--call-graph",
                "dwarf,16384",
                "-p",
                &pid.to_string(),
                "-o",
            ])
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start perf (apt-get install linux-perf): {e}"))?;
        // perf attaches to every thread of the process before it samples.
        std::thread::sleep(Duration::from_millis(500));
        Ok(Recording { child })
    }

    /// Stops the recording (SIGINT, as at the terminal) and waits until
    /// perf has written its file.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
