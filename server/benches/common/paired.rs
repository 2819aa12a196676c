//! Timing two operations in alternation: on a shared machine the ratio of
//! their medians stays steadier than one of two separate criterion runs.

use std::time::Instant;

/// The medians, in nanoseconds, of `a` and `b`, each timed `rounds` times in
/// the order a, b, a, b, ...
pub fn paired_medians(rounds: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let mut a_ns = Vec::with_capacity(rounds);
    let mut b_ns = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        a();
        a_ns.push(t.elapsed().as_nanos());
        let t = Instant::now();
        b();
        b_ns.push(t.elapsed().as_nanos());
    }
    a_ns.sort_unstable();
    b_ns.sort_unstable();
    (a_ns[rounds / 2] as f64, b_ns[rounds / 2] as f64)
}
