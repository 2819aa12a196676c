#!/usr/bin/env python3
"""The floods of issues 15 and 23, from one client, against a running server.

--kind picks the flood (issue 15's is the default):
- half-open: each connection sends `POST /api/whoami HTTP/1.1` and one
  header, then nothing;
- slow-body: each sends a whole `POST /api/health` head announcing a
  60,000-byte body, then one byte every --trickle-every seconds;
- slow-reader: each connection, with a 4 KiB receive buffer, asks for
  --reader-path three times, pipelined, and never reads.
--well-behaved N adds N clients that send the probe request over and over
on keep-alive connections (reconnecting when closed) while the flood
lasts, and reports how many of their requests were answered (the mixed
case of issue 23). --server-pid reports the server's peak resident memory
and, each second, the connections it holds (its open descriptors less
those it held before), which is what counts for the slow readers: the
client cannot see the server close a socket whose data it never read.

    python3 server/load/flood.py --kind slow-body --connections 12000 --processes 2 \
        --well-behaved 50 --server-pid "$(pgrep -f target/release/server)"

Opens --connections TCP connections to --addr as fast as it can; each sends
`POST /api/whoami HTTP/1.1` and one header, then nothing. Meanwhile a probe
sends a normal `POST /api/health` on a fresh connection every --probe-every
seconds (from --before seconds before the flood until the end) and times
the whole answer. After the last flood connection is open it waits --hold
seconds, counting every second how many flood connections the server has
not closed yet (a closed one reads as end of stream or reset). Probe times
are also given without connect(): with ~20,000 of this host's local ports
held by the flood, the client's own kernel takes milliseconds to find a
free one, which says nothing about the server.

The connections are shared among --processes worker processes of this one
client, so each needs only its share of descriptors: where `ulimit -n`
cannot be raised (a container whose hard limit is 20,000), two processes
hold 20,000 connections.

    python3 server/load/flood.py --addr 127.0.0.1:3200 --connections 20000 --processes 2

--probe-addr and --probe-get send the probe elsewhere (another listener of
the same server, say).

Plain Python 3 (standard library only); Linux (poll with POLLRDHUP).
Prints one summary block; exit status 0 whatever it measured.
"""

import argparse
import errno
import multiprocessing
import os
import resource
import select
import socket
import statistics
import threading
import time

HALF_OPEN = b"POST /api/whoami HTTP/1.1\r\nHost: localhost\r\n"
SLOW_BODY = b"POST /api/health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 60000\r\n\r\n"


def flood_head(kind, reader_path):
    if kind == "half-open":
        return HALF_OPEN
    if kind == "slow-body":
        return SLOW_BODY
    one = f"GET {reader_path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
    return one * 3


def probe_request(host, get_path):
    """`POST /api/health`, or `GET get_path` when given."""
    if get_path:
        return f"GET {get_path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    return (
        "POST /api/health HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Content-Length: 0\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


def probe_once(addr, request, timeout):
    """(seconds to a whole 200 answer, of which connecting), or (None, the
    reason there was none)."""
    started = time.monotonic()
    try:
        with socket.create_connection(addr, timeout=timeout) as s:
            connected = time.monotonic() - started
            s.settimeout(max(0.001, timeout - (time.monotonic() - started)))
            s.sendall(request)
            answer = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
    except OSError as err:
        return None, f"{type(err).__name__}: {err}"
    elapsed = time.monotonic() - started
    status = answer[9:12]
    if status != b"200":
        return None, f"status {status!r}"
    return (elapsed, connected), None


class Probe(threading.Thread):
    def __init__(self, addr, every, timeout, get_path):
        super().__init__(daemon=True)
        self.addr, self.every, self.timeout = addr, every, timeout
        self.request = probe_request(f"{addr[0]}:{addr[1]}", get_path)
        self.results = []  # (started at, seconds or None, error)
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            at = time.monotonic()
            seconds, error = probe_once(self.addr, self.request, self.timeout)
            self.results.append((at, seconds, error))
            self.stop.wait(max(0.0, self.every - (time.monotonic() - at)))

    def between(self, start, end):
        return [r for r in self.results if start <= r[0] < end]


def summary(results):
    """Whole-answer latency; in brackets, the same without connect(), which
    the client's own kernel spends finding a free local port."""
    ok = [r[1] for r in results if r[1] is not None]
    failed = [r[2] for r in results if r[1] is None]
    if not ok:
        return f"{len(results)} probes, none answered ({failed[:3]})"

    def stats(values):
        ms = sorted(x * 1000 for x in values)
        p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
        return statistics.median(ms), p95, ms[-1]

    total = stats(t for t, _ in ok)
    after_connect = stats(t - c for t, c in ok)
    line = (
        f"{len(results)} probes: median {total[0]:.1f} ms, p95 {total[1]:.1f} ms, "
        f"max {total[2]:.1f} ms (after connect: {after_connect[0]:.1f} / "
        f"{after_connect[1]:.1f} / {after_connect[2]:.1f} ms)"
    )
    if failed:
        line += f", {len(failed)} without an answer (first: {failed[0]})"
    return line


def still_open(socks):
    """How many of `socks` the server has not closed (nothing to read, no
    hang-up); the server never answers them, so readable means closed."""
    poller = select.poll()
    mask = select.POLLIN | select.POLLRDHUP | select.POLLHUP | select.POLLERR
    for s in socks:
        poller.register(s.fileno(), mask)
    closed = len(poller.poll(0))
    return len(socks) - closed


def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    except (ValueError, OSError):
        pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        raise SystemExit(
            f"a process needs {want} descriptors, the limit is {soft} (hard {hard}): "
            "raise ulimit -n or use more --processes"
        )


BATCH = 256


def open_batch(addr, n, failed, head, small_window):
    """Starts `n` connects at once (non-blocking, as a real flood does),
    then sends `head` on each that connects within 5 s."""
    starting = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if small_window:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        err = s.connect_ex(addr)
        if err not in (0, errno.EINPROGRESS):
            failed.append(f"connect: {os.strerror(err)}")
            s.close()
            continue
        starting.append(s)
    poller = select.poll()
    by_fd = {s.fileno(): s for s in starting}
    for fd in by_fd:
        poller.register(fd, select.POLLOUT)
    opened = []
    deadline = time.monotonic() + 5
    while by_fd and time.monotonic() < deadline:
        for fd, _ in poller.poll(max(0, int((deadline - time.monotonic()) * 1000))):
            s = by_fd.pop(fd)
            poller.unregister(fd)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                failed.append(f"connect: {os.strerror(err)}")
                s.close()
                continue
            try:
                s.send(head)
                opened.append(s)
            except OSError as e:
                failed.append(f"send: {e}")
                s.close()
    for s in by_fd.values():
        failed.append("connect: no answer within 5 s")
        s.close()
    return opened


def trickle(socks, second, every):
    """One byte on each slow-body connection whose turn it is this second
    (each gets one every `every` seconds)."""
    for i, s in enumerate(socks):
        if (i + second) % every == 0:
            try:
                s.send(b"a")
            except OSError:
                pass


def worker(addr, count, hold, conn, kind, reader_path, trickle_every):
    """Opens `count` flood connections, reports when done, then counts
    the open ones at each second the parent names."""
    raise_fd_limit(count + 64)
    head = flood_head(kind, reader_path)
    conn.recv()  # go
    socks, failed = [], []
    left = count
    while left:
        batch = open_batch(addr, min(left, BATCH), failed, head, kind == "slow-reader")
        socks.extend(batch)
        left -= min(left, BATCH)
    conn.send((time.monotonic(), len(socks), len(failed), failed[:1]))
    flood_open = conn.recv()
    for second in range(int(hold) + 1):
        time.sleep(max(0.0, flood_open + second - time.monotonic()))
        if kind == "slow-body":
            trickle(socks, second, trickle_every)
        # A slow-body connection the server answered (408) and closed
        # reads as closed; a slow reader always has data to read.
        conn.send((second, still_open(socks) if kind != "slow-reader" else None))
    conn.recv()  # done
    for s in socks:
        s.close()


class WellBehaved(threading.Thread):
    """Sends `request` (with keep-alive) over and over, one at a time,
    reconnecting when the server closes; counts answered and sent."""

    def __init__(self, addr, request, timeout):
        super().__init__(daemon=True)
        self.addr, self.timeout = addr, timeout
        self.request = request.replace(b"Connection: close\r\n", b"")
        self.sent = self.answered = 0
        self.stop = threading.Event()

    def run(self):
        sock, buffered = None, b""
        while not self.stop.is_set():
            try:
                if sock is None:
                    sock = socket.create_connection(self.addr, timeout=self.timeout)
                    buffered = b""
                self.sent += 1
                sock.sendall(self.request)
                while b"\r\n\r\n" not in buffered:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise OSError("closed")
                    buffered += chunk
                head, _, rest = buffered.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise OSError("closed")
                    rest += chunk
                buffered = rest[length:]
                if head[9:12] == b"200":
                    self.answered += 1
            except OSError:
                if sock is not None:
                    sock.close()
                sock = None
                self.stop.wait(0.05)


def server_memory(pid):
    """(VmRSS, VmHWM) of `pid`, in MB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def server_descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addr", default="127.0.0.1:3200")
    parser.add_argument("--connections", type=int, default=20000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--hold", type=float, default=15.0)
    parser.add_argument("--before", type=float, default=2.0)
    parser.add_argument("--probe-every", type=float, default=0.1)
    parser.add_argument("--probe-timeout", type=float, default=5.0)
    parser.add_argument("--probe-addr", help="where the probe goes (default: --addr)")
    parser.add_argument("--probe-get", metavar="PATH", help="probe with GET PATH instead")
    parser.add_argument("--kind", choices=["half-open", "slow-body", "slow-reader"],
                        default="half-open")
    parser.add_argument("--trickle-every", type=int, default=5,
                        help="slow-body: seconds between a connection's bytes")
    parser.add_argument("--reader-path", default="/pkg/okta-implicit.wasm",
                        help="slow-reader: the (large) file asked for")
    parser.add_argument("--well-behaved", type=int, default=0, metavar="N")
    parser.add_argument("--server-pid", type=int)
    args = parser.parse_args()
    if args.kind == "slow-reader" and not args.server_pid:
        parser.error("--kind slow-reader needs --server-pid: only the server sees its slow readers closed")
    host, port = args.addr.rsplit(":", 1)
    addr = (host, int(port))
    probe_host, probe_port = (args.probe_addr or args.addr).rsplit(":", 1)
    probe_addr = (probe_host, int(probe_port))
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ports = f.read().split()

    shares = [args.connections // args.processes] * args.processes
    shares[0] += args.connections - sum(shares)
    ctx = multiprocessing.get_context("fork")
    workers = []
    for share in shares:
        ours, theirs = ctx.Pipe()
        process = ctx.Process(target=worker, args=(addr, share, args.hold, theirs, args.kind,
                                                   args.reader_path, args.trickle_every))
        process.start()
        workers.append((process, ours))

    probe = Probe(probe_addr, args.probe_every, args.probe_timeout, args.probe_get)
    probe.start()
    time.sleep(args.before)
    fds_before = server_descriptors(args.server_pid) if args.server_pid else None
    rss_before = server_memory(args.server_pid)[0] if args.server_pid else None
    clients = [WellBehaved(probe_addr, probe.request, args.probe_timeout)
               for _ in range(args.well_behaved)]
    for client in clients:
        client.start()

    flood_start = time.monotonic()
    for _, conn in workers:
        conn.send("go")
    opened = [conn.recv() for _, conn in workers]
    flood_open = max(done for done, _, _, _ in opened)
    connected = sum(n for _, n, _, _ in opened)
    failed = sum(n for _, _, n, _ in opened)
    first_failure = next((f[0] for _, _, _, f in opened if f), None)
    for _, conn in workers:
        conn.send(flood_open)
    timeline, peak_rss = [], 0.0
    for second in range(int(args.hold) + 1):
        counts = [conn.recv() for _, conn in workers]
        if args.server_pid:
            held = server_descriptors(args.server_pid) - fds_before
            peak_rss = max(peak_rss, server_memory(args.server_pid)[0])
        open_now = (sum(n for _, n in counts) if args.kind != "slow-reader"
                    else f"{held} descriptors")
        timeline.append((second, open_now))
    end = time.monotonic()
    probe.stop.set()
    for client in clients:
        client.stop.set()
    probe.join()
    for client in clients:
        client.join()
    for process, conn in workers:
        conn.send("done")
        process.join()

    print(f"client: {args.connections} {args.kind} connections to {args.addr} from "
          f"{args.processes} process(es), local ports {ports[0]}-{ports[1]}")
    print(f"flood opened in {flood_open - flood_start:.2f} s: {connected} connected and sent, "
          f"{failed} failed" + (f" (first: {first_failure})" if first_failure else ""))
    what = f"GET {args.probe_get}" if args.probe_get else "POST /api/health"
    print(f"normal {what} to {probe_host}:{probe_port}, a fresh connection each:")
    print(f"  before the flood:           {summary(probe.between(0, flood_start))}")
    print(f"  while the flood opened:     {summary(probe.between(flood_start, flood_open))}")
    print(f"  during the {args.hold:.0f} s after it: {summary(probe.between(flood_open, end))}")
    if clients:
        sent = sum(c.sent for c in clients)
        answered = sum(c.answered for c in clients)
        print(f"{len(clients)} well-behaved keep-alive clients during the flood: "
              f"{answered} of {sent} requests answered")
    if args.server_pid:
        print(f"server memory: {rss_before:.0f} MB before, peak {peak_rss:.0f} MB "
              f"(sampled each second; VmHWM {server_memory(args.server_pid)[1]:.0f} MB)")
    print("flood connections the server has not closed, seconds after the last one opened"
          + (" (the server's descriptors beyond those it held before: a slow reader"
             " holds two, its socket and the file)" if args.kind == "slow-reader" else "") + ":")
    print("  " + ", ".join(f"{s} s: {n}" for s, n in timeline))


if __name__ == "__main__":
    main()
