#!/usr/bin/env python3
"""Where a request's server CPU goes, by part of the stack.

Reads `perf script -F ip,sym,dso` output of a profile taken with call
graphs (`target/release/load --cases 3 --perf` writes them, see
`loadtest/src/profile.rs`) and gives each sample to the innermost frame of
its stack that belongs to a known part: the kernel, the token check, the
bearer layer, the Leptos server-function handler, the request span, the
edge layers, axum and tower's plumbing, hyper, the connection loop, the
runtime. Allocation and copying count for the part that called them.

    perf script -i target/load/perf-3a-run1.data -F ip,sym,dso > 3a.txt
    python3 loadtest/profile_buckets.py 3a.txt 25.8   # µs of CPU per request
"""
import collections
import re
import sys

PARTS = [
    ("kernel (TCP send and receive, syscalls, scheduler)",
     lambda sym, dso: dso.startswith("[kernel")),
    ("token check (validator, verified-token cache, header parse)",
     lambda sym, dso: "server::bearer::" in sym),
    ("bearer layer", lambda sym, dso: "bearer_layer" in sym or "bearer_auth" in sym),
    ("Leptos server-function handler (server_fn, leptos_axum, reactive_graph, app, JSON)",
     lambda sym, dso: any(s in sym for s in (
         "server_fn", "leptos_axum", "reactive_graph", "app::api", "leptos::", "any_spawner",
         "LeptosOptions", "leptos_config", "serde_json", "serde_qs", "browser_auth"))),
    ("request span, log line, metrics",
     lambda sym, dso: any(s in sym for s in ("request_span", "tracing", "metrics"))),
    ("compression layer", lambda sym, dso: "compression" in sym),
    ("other edge layers (security headers, cache policy, silent callback, body limit)",
     lambda sym, dso: any(s in sym for s in (
         "SecurityHeaders", "cache_policy", "silent_callback", "body_limit", "limit_body",
         "set_header", "delivery"))),
    ("axum routing, from_fn and tower plumbing",
     lambda sym, dso: any(s in sym for s in ("axum", "matchit", "tower::", "tower_service", "futures_util"))),
    ("hyper (HTTP/1 parse, encode, dispatch; header maps)",
     lambda sym, dso: any(s in sym for s in ("hyper::", "httparse", "http::"))),
    ("connection loop (edge::serve)", lambda sym, dso: "edge::serve" in sym),
    ("tokio runtime", lambda sym, dso: "tokio::" in sym or "mio::" in sym),
]
UNKNOWN = "unattributed (no known frame: lost unwinding, libc alone)"


def stacks(path):
    """Each sample's frames, innermost first, as (symbol, dso)."""
    stack = []
    with open(path, errors="replace") as lines:
        for line in lines:
            line = line.strip()
            if not line:
                if stack:
                    yield stack
                stack = []
                continue
            parts = line.split(None, 1)
            rest = parts[1] if len(parts) > 1 else ""
            m = re.match(r"(.*) \((.*)\)$", rest)
            stack.append((m.group(1), m.group(2)) if m else (rest, ""))
    if stack:
        yield stack


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    counts, total = collections.Counter(), 0
    for stack in stacks(sys.argv[1]):
        total += 1
        part = next(
            (name for sym, dso in stack for name, test in PARTS if test(sym, dso)), UNKNOWN
        )
        counts[part] += 1
    if not total:
        sys.exit("no samples: was the profile taken with --call-graph?")
    per_request = float(sys.argv[2]) if len(sys.argv) > 2 else None
    for name, n in counts.most_common():
        us = f"  {per_request * n / total:5.1f} µs" if per_request else ""
        print(f"{100 * n / total:5.1f} %  {n:6d}{us}  {name}")
    print(f"{total} samples")


if __name__ == "__main__":
    main()
