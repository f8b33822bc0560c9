//! Measurements, medians and the in-process report; every run is also kept as a sample for the full
//! report (`summary.rs`).

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// One side-by-side result: every run of both sides, interleaved by the caller.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) id: &'static str,
    pub(crate) name: &'static str,
    pub(crate) ours: &'static str,
    pub(crate) ours_runs: Vec<f64>,
    pub(crate) baseline: &'static str,
    pub(crate) baseline_runs: Vec<f64>,
    pub(crate) goal: Option<f64>,
}

/// A rate with no raw counterpart to compare with (a whole flow, such as a complete login).
#[derive(Debug)]
pub(crate) struct Figure {
    pub(crate) id: &'static str,
    pub(crate) name: &'static str,
    pub(crate) what: &'static str,
    pub(crate) runs: Vec<f64>,
}

#[derive(Debug, Default)]
pub(crate) struct Report {
    rows: Vec<Row>,
    figures: Vec<Figure>,
}

/// Operations per second of `op`, run repeatedly for `window`.
pub(crate) fn rate(window: Duration, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < window {
        for _ in 0..64 {
            op();
        }
        count += 64;
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// Operations per second of `a` and of `b` over `window` each, alternating in twenty slices so a change
/// in the machine's load lands on both sides alike.
pub(crate) fn interleaved_rates(window: Duration, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let slice = window / 20;
    let (mut a_rate, mut b_rate) = (0.0, 0.0);
    for _ in 0..20 {
        a_rate += rate(slice, &mut a);
        b_rate += rate(slice, &mut b);
    }
    (a_rate / 20.0, b_rate / 20.0)
}

/// The median of `runs` values; `runs` pairs are interleaved by the caller so both sides see the same
/// machine state.
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => f64::midpoint(values[n / 2 - 1], values[n / 2]),
    }
}

/// One measurement of one side of a pair, as a line of the samples file that `report` reads.
pub(crate) fn sample(pair: &str, side: &str, run: usize, value: f64, unit: &str) -> Value {
    json!({ "pair": pair, "side": side, "run": run, "value": value, "unit": unit })
}

/// Appends samples, one JSON object per line.
pub(crate) fn append_samples(path: &Path, samples: &[Value]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    for s in samples {
        writeln!(file, "{s}")?;
    }
    Ok(())
}

impl Report {
    pub(crate) fn push(&mut self, row: Row) {
        let (ours, baseline) = (median(row.ours_runs.clone()), median(row.baseline_runs.clone()));
        println!(
            "{}: {} {ours:.0}/s, {} {baseline:.0}/s, ratio {:.2}",
            row.name,
            row.ours,
            row.baseline,
            ours / baseline
        );
        self.rows.push(row);
    }

    pub(crate) fn figure(&mut self, figure: Figure) {
        println!("{}: {} {:.0}/s", figure.name, figure.what, median(figure.runs.clone()));
        self.figures.push(figure);
    }

    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        if !self.rows.is_empty() {
            out.push_str(
                "\n| pair | Portcullis | ops/s | baseline | ops/s | ratio | goal |\n| --- | --- | --- | --- | --- | --- | --- |\n",
            );
        }
        for r in &self.rows {
            let (ours, baseline) = (median(r.ours_runs.clone()), median(r.baseline_runs.clone()));
            let ratio = ours / baseline;
            let goal =
                r.goal.map_or_else(|| "—".to_owned(), |g| format!("≥ {g} {}", if ratio >= g { "✓" } else { "✗" }));
            out.push_str(&format!(
                "| {} | {} | {ours:.0} | {} | {baseline:.0} | {ratio:.2} | {goal} |\n",
                r.name, r.ours, r.baseline
            ));
        }
        if !self.figures.is_empty() {
            out.push_str("\n| flow | what | per second |\n| --- | --- | --- |\n");
            for f in &self.figures {
                out.push_str(&format!("| {} | {} | {:.0} |\n", f.name, f.what, median(f.runs.clone())));
            }
        }
        out
    }

    pub(crate) fn json(&self) -> String {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let (ours, baseline) = (median(r.ours_runs.clone()), median(r.baseline_runs.clone()));
                json!({
                    "pair": r.name, "portcullis": r.ours, "portcullisOpsPerSec": ours,
                    "baseline": r.baseline, "baselineOpsPerSec": baseline,
                    "ratio": ours / baseline, "goal": r.goal,
                })
            })
            .collect();
        let figures: Vec<Value> = self
            .figures
            .iter()
            .map(|f| json!({ "flow": f.name, "what": f.what, "perSecond": median(f.runs.clone()) }))
            .collect();
        serde_json::to_string_pretty(&json!({ "results": rows, "figures": figures })).unwrap_or_default()
    }

    /// Every run of every pair, for the full report.
    pub(crate) fn samples(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for r in &self.rows {
            for (run, (ours, baseline)) in r.ours_runs.iter().zip(&r.baseline_runs).enumerate() {
                out.push(sample(r.id, "portcullis", run + 1, *ours, "ops/s"));
                out.push(sample(r.id, "baseline", run + 1, *baseline, "ops/s"));
            }
        }
        for f in &self.figures {
            for (run, value) in f.runs.iter().enumerate() {
                out.push(sample(f.id, "portcullis", run + 1, *value, "ops/s"));
            }
        }
        out
    }
}
