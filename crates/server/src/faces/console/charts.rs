//! The overview's charts: the last hour per minute as inline SVG drawn on the server (the console runs
//! no script). Only numbers and fixed text go into the markup.

use std::fmt::Write as _;

use crate::activity::Minute;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 120.0;
const PAD: f64 = 4.0;
/// The drawing area inside the padding.
const PLOT_WIDTH: f64 = WIDTH - PAD - PAD;
const PLOT_HEIGHT: f64 = HEIGHT - PAD - PAD;

/// One chart: a title, the unit of its values and the values, oldest first.
pub(super) struct Chart {
    pub(super) title: &'static str,
    pub(super) svg: String,
    /// What a screen reader hears instead of the drawing.
    pub(super) summary: String,
}

fn format_value(value: f64) -> String {
    if value.fract().abs() < f64::EPSILON { format!("{value:.0}") } else { format!("{value:.1}") }
}

fn line_chart(title: &'static str, unit: &str, values: &[f64]) -> Chart {
    let peak = values.iter().copied().fold(0.0_f64, f64::max);
    let scale = if peak > 0.0 { PLOT_HEIGHT / peak } else { 0.0 };
    let step = if values.len() > 1 { PLOT_WIDTH / (values.len() - 1) as f64 } else { 0.0 };
    let mut points = String::new();
    for (i, value) in values.iter().enumerate() {
        let x = step.mul_add(i as f64, PAD);
        let y = value.mul_add(-scale, HEIGHT - PAD);
        let _ = write!(points, "{x:.1},{y:.1} ");
    }
    let latest = values.last().copied().unwrap_or_default();
    let summary = format!(
        "{title}: {} {unit} in the latest minute, peak {} {unit} over the last hour.",
        format_value(latest),
        format_value(peak)
    );
    let svg = format!(
        "<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\" height=\"{HEIGHT}\" aria-hidden=\"true\" focusable=\"false\">\
         <line x1=\"{PAD}\" y1=\"{base}\" x2=\"{right}\" y2=\"{base}\" stroke=\"#8a939e\" stroke-width=\"1\"/>\
         <polyline points=\"{points}\" fill=\"none\" stroke=\"#0b4ea2\" stroke-width=\"2\"/>\
         <text x=\"{PAD}\" y=\"14\" font-size=\"12\" fill=\"#4a5360\">peak {peak_text} {unit}</text></svg>",
        base = HEIGHT - PAD,
        right = WIDTH - PAD,
        peak_text = format_value(peak),
    );
    Chart { title, svg, summary }
}

/// The overview's four charts over `minutes`.
pub(super) fn overview_charts(minutes: &[Minute]) -> Vec<Chart> {
    let series = |f: fn(&Minute) -> f64| minutes.iter().map(f).collect::<Vec<f64>>();
    vec![
        line_chart("Requests per minute", "requests", &series(|m| m.requests as f64)),
        line_chart("Logins per minute", "logins", &series(|m| m.logins as f64)),
        line_chart("Refreshes per minute", "refreshes", &series(|m| m.refreshes as f64)),
        line_chart("p99 latency", "ms", &series(Minute::p99_millis)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_scales_to_its_peak_and_says_it_in_words() {
        let chart = line_chart("Logins per minute", "logins", &[0.0, 2.0, 4.0]);
        assert!(chart.svg.contains("points=\"4.0,116.0 300.0,60.0 596.0,4.0 \""), "{}", chart.svg);
        assert_eq!(
            chart.summary,
            "Logins per minute: 4 logins in the latest minute, peak 4 logins over the last hour."
        );
        let flat = line_chart("Requests per minute", "requests", &[0.0, 0.0]);
        assert!(flat.svg.contains("4.0,116.0 596.0,116.0"), "an idle hour is a flat line: {}", flat.svg);
    }
}
