//! The figures: every value a case records, by name, printed as it comes,
//! with a FAILED line for each broken check; the checks every case makes
//! on its answers; throughput, p50, p99, requests per server CPU-second
//! and server CPU per request; and at the end the table of median and min–max over the
//! runs, next to the targets.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::driver::{Class, Stats};

/// Every figure of every run, by name.
#[derive(Default)]
pub struct Results {
    rows: Mutex<Vec<(String, String, String)>>,
    values: Mutex<BTreeMap<String, Vec<f64>>>,
    failed: AtomicBool,
}

impl Results {
    /// Records `value` for `name`; `unit` and `target` are shown in the
    /// table (the first time a name is seen fixes its row).
    pub fn add(&self, name: &str, value: f64, unit: &str, target: &str) {
        let mut values = self.values.lock().expect("results");
        if !values.contains_key(name) {
            self.rows.lock().expect("rows").push((
                name.to_string(),
                unit.to_string(),
                target.to_string(),
            ));
        }
        values.entry(name.to_string()).or_default().push(value);
        println!("    {name}: {} {unit}", fmt_num(value));
    }

    pub fn fail(&self, why: &str) {
        println!("    FAILED: {why}");
        self.failed.store(true, Ordering::SeqCst);
    }

    /// Whether any check of any run failed.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// The table of medians and min–max over the runs, one row per figure.
    pub fn print_table(&self, runs: usize) {
        let values = self.values.lock().expect("results");
        println!("\n| figure | median | min–max | unit | n | target |");
        println!("|---|---|---|---|---|---|");
        for (name, unit, target) in self.rows.lock().expect("rows").iter() {
            let mut v = values.get(name).cloned().unwrap_or_default();
            v.retain(|x| !x.is_nan());
            if v.is_empty() {
                println!("| {name} | – | – | {unit} | 0/{runs} | {target} |");
                continue;
            }
            v.sort_by(|a, b| a.total_cmp(b));
            let median = if v.len() % 2 == 1 {
                v[v.len() / 2]
            } else {
                (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
            };
            // Ratios get three decimals, so one just under a target
            // never shows as meeting it.
            let fmt = |x: f64| {
                if *unit == "×" {
                    format!("{x:.3}")
                } else {
                    fmt_num(x)
                }
            };
            println!(
                "| {name} | {} | {}–{} | {unit} | {} | {target} |",
                fmt(median),
                fmt(v[0]),
                fmt(v[v.len() - 1]),
                v.len()
            );
        }
    }

    /// The checks every case makes: nothing wrong, no 5xx but 503, no hangs.
    pub fn check_correct(&self, case: &str, stats: &Stats) {
        self.add(
            &format!("{case}: wrong decisions"),
            stats.wrong as f64,
            "",
            "0",
        );
        self.add(
            &format!("{case}: 5xx other than 503"),
            stats.five_xx as f64,
            "",
            "0",
        );
        if stats.failures > 0 {
            self.add(
                &format!("{case}: transport errors / timeouts"),
                stats.failures as f64,
                "",
                "0",
            );
        }
        if stats.wrong > 0 || stats.five_xx > 0 || stats.failures > 0 {
            self.fail(&format!("{case}: {:?}", stats.examples));
        }
    }

    /// Records throughput, p50, p99 and requests per server CPU-second of
    /// `class` in `stats` under `label`; returns the throughput and the
    /// requests per server CPU-second.
    pub fn report_throughput(
        &self,
        label: &str,
        class: Class,
        stats: &mut Stats,
        cpu: f64,
    ) -> (f64, f64) {
        let tput = self.add_throughput_p99(label, class, stats, true);
        let per_cpu = stats.count(class) as f64 / cpu.max(1e-9);
        self.add(
            &format!("{label}: requests per server CPU-second"),
            per_cpu,
            "req/CPU-s",
            "",
        );
        (tput, per_cpu)
    }

    /// Records throughput, p99 and server CPU per request of `class` in
    /// `stats` under `label`; returns the CPU per request, in µs.
    pub fn report_cpu_per_request(
        &self,
        label: &str,
        class: Class,
        stats: &mut Stats,
        cpu: f64,
    ) -> f64 {
        self.add_throughput_p99(label, class, stats, false);
        let us = 1e6 * cpu / stats.count(class).max(1) as f64;
        self.add(&format!("{label}: server CPU per request"), us, "µs", "");
        us
    }

    /// Records the throughput of `class` in `stats`, its p50 if `p50`, and
    /// its p99, under `label`; returns the throughput.
    fn add_throughput_p99(&self, label: &str, class: Class, stats: &mut Stats, p50: bool) -> f64 {
        let tput = stats.throughput(class);
        self.add(&format!("{label}: throughput"), tput, "req/s", "");
        let quantiles: &[(&str, f64)] = if p50 {
            &[("p50", 0.5), ("p99", 0.99)]
        } else {
            &[("p99", 0.99)]
        };
        for &(name, q) in quantiles {
            self.add(
                &format!("{label}: {name}"),
                stats.quantile_ms(class, q),
                "ms",
                "",
            );
        }
        tput
    }

    /// Prints the table of every figure over `runs` and the verdict line;
    /// true when every check passed.
    pub fn finish(&self, runs: usize) -> bool {
        self.print_table(runs);
        let failed = self.failed();
        println!(
            "\n{}",
            if failed {
                "SOME CHECKS FAILED (see FAILED lines above)"
            } else {
                "all checks passed"
            }
        );
        !failed
    }
}

/// A figure with as many decimals as its size calls for.
fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 0.1 || v == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}
