//! Measurements, medians and the report.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// One side-by-side result.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) name: &'static str,
    pub(crate) ours: &'static str,
    pub(crate) ours_rate: f64,
    pub(crate) baseline: &'static str,
    pub(crate) baseline_rate: f64,
    pub(crate) goal: Option<f64>,
}

/// A rate with no raw counterpart to compare with (a whole flow, such as a complete login).
#[derive(Debug)]
pub(crate) struct Figure {
    pub(crate) name: &'static str,
    pub(crate) what: &'static str,
    pub(crate) rate: f64,
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

/// The median of `runs` values; `runs` pairs are interleaved by the caller so both sides see the same
/// machine state.
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

impl Report {
    pub(crate) fn push(&mut self, row: Row) {
        println!(
            "{}: {} {:.0}/s, {} {:.0}/s, ratio {:.2}",
            row.name,
            row.ours,
            row.ours_rate,
            row.baseline,
            row.baseline_rate,
            row.ours_rate / row.baseline_rate
        );
        self.rows.push(row);
    }

    pub(crate) fn figure(&mut self, figure: Figure) {
        println!("{}: {} {:.0}/s", figure.name, figure.what, figure.rate);
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
            let ratio = r.ours_rate / r.baseline_rate;
            let goal =
                r.goal.map_or_else(|| "—".to_owned(), |g| format!("≥ {g} {}", if ratio >= g { "✓" } else { "✗" }));
            out.push_str(&format!(
                "| {} | {} | {:.0} | {} | {:.0} | {:.2} | {} |\n",
                r.name, r.ours, r.ours_rate, r.baseline, r.baseline_rate, ratio, goal
            ));
        }
        if !self.figures.is_empty() {
            out.push_str("\n| flow | what | per second |\n| --- | --- | --- |\n");
            for f in &self.figures {
                out.push_str(&format!("| {} | {} | {:.0} |\n", f.name, f.what, f.rate));
            }
        }
        out
    }

    pub(crate) fn json(&self) -> String {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                json!({
                    "pair": r.name, "portcullis": r.ours, "portcullisOpsPerSec": r.ours_rate,
                    "baseline": r.baseline, "baselineOpsPerSec": r.baseline_rate,
                    "ratio": r.ours_rate / r.baseline_rate, "goal": r.goal,
                })
            })
            .collect();
        let figures: Vec<Value> =
            self.figures.iter().map(|f| json!({ "flow": f.name, "what": f.what, "perSecond": f.rate })).collect();
        serde_json::to_string_pretty(&json!({ "results": rows, "figures": figures })).unwrap_or_default()
    }
}
