//! SVG charts for `docs/img/`: one per pair (Portcullis beside its baseline) and one of every ratio
//! against its goal. Text is left to the SVG viewer's sans-serif font, so no font is built in.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::summary::{Goal, Outcome, human};

const OURS: RGBColor = RGBColor(0x2f, 0x6f, 0xb3);
const PEER: RGBColor = RGBColor(0xa0, 0xa0, 0xa0);
const MISSED: RGBColor = RGBColor(0xc0, 0x39, 0x2b);
const WIDTH: u32 = 820;

fn label(size: u32) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center))
}

fn failed(e: impl std::fmt::Display) -> String {
    format!("chart: {e}")
}

/// Two horizontal bars on a linear scale, each labelled with its figure.
fn pair_chart(path: &Path, o: &Outcome<'_>) -> Result<(), String> {
    let Some(baseline) = &o.baseline else { return Ok(()) };
    let bars = [
        (format!("Portcullis: {} {}", human(o.ours.median()), o.spec.unit), o.ours.median(), OURS),
        (format!("{}: {} {}", o.spec.peer, human(baseline.median()), o.spec.unit), baseline.median(), PEER),
    ];
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max);
    let root = SVGBackend::new(path, (WIDTH, 150)).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let caption = match o.ratio {
        Some(r) => format!("{}: {}×", o.spec.title.replace('`', ""), human(r)),
        None => o.spec.title.replace('`', ""),
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(24)
        .build_cartesian_2d(0.0..max * 1.9, 0.0..2.0)
        .map_err(failed)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_labels(6)
        .x_label_formatter(&|v| human(*v))
        .draw()
        .map_err(failed)?;
    for (i, (text, value, color)) in bars.iter().enumerate() {
        let y = 1.0 - i as f64;
        chart
            .draw_series(std::iter::once(Rectangle::new([(0.0, y + 0.2), (*value, y + 0.8)], color.filled())))
            .map_err(failed)?;
        chart
            .draw_series(std::iter::once(Text::new(text.clone(), (value + max * 0.02, y + 0.5), label(13))))
            .map_err(failed)?;
    }
    root.present().map_err(failed)
}

/// Every ratio on a log scale, with its goal as a black tick; missed goals in red.
fn ratio_chart(path: &Path, outcomes: &[Outcome<'_>]) -> Result<(), String> {
    let rows: Vec<&Outcome<'_>> = outcomes.iter().filter(|o| o.ratio.is_some()).collect();
    let n = rows.len();
    let height = 70 + 30 * u32::try_from(n).unwrap_or(0);
    // Whole decades around every ratio and goal, with room on the right for the labels.
    let goals = rows.iter().filter_map(|o| if let Goal::Ratio(g) = o.spec.goal { Some(g) } else { None });
    let values: Vec<f64> = rows.iter().filter_map(|o| o.ratio).chain(goals).collect();
    let low = 10f64.powf((values.iter().fold(1.0, |a: f64, b| a.min(*b)) / 2.0).log10().floor());
    let high = 10f64.powf((values.iter().fold(1.0, |a: f64, b| a.max(*b)) * 200.0).log10().ceil());
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Portcullis ÷ baseline (× better; black tick: goal)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(24)
        .build_cartesian_2d((low..high).log_scale(), 0.0..n as f64)
        .map_err(failed)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_label_formatter(&|v| format!("{}×", human(*v)))
        .draw()
        .map_err(failed)?;
    for (i, o) in rows.iter().enumerate() {
        let ratio = o.ratio.unwrap_or(1.0);
        let y = (n - 1 - i) as f64;
        let color = if o.met == Some(false) { MISSED } else { OURS };
        chart
            .draw_series(std::iter::once(Rectangle::new([(low, y + 0.2), (ratio, y + 0.8)], color.filled())))
            .map_err(failed)?;
        let mut text = format!("{}: {}×", o.spec.title.replace('`', ""), human(ratio));
        let mut right = ratio;
        match o.spec.goal {
            Goal::Ratio(goal) => {
                let tick = Rectangle::new([(goal / 1.015, y + 0.05), (goal * 1.015, y + 0.95)], BLACK.filled());
                chart.draw_series(std::iter::once(tick)).map_err(failed)?;
                right = right.max(goal);
            }
            Goal::AtMost(limit) => {
                let unit = o.spec.unit;
                let _ = write!(text, " ({} {unit}; goal ≤ {} {unit})", human(o.ours.median()), human(limit));
            }
            Goal::None => {}
        }
        chart.draw_series(std::iter::once(Text::new(text, (right * 1.12, y + 0.5), label(12)))).map_err(failed)?;
    }
    root.present().map_err(failed)
}

pub(crate) fn write(dir: &Path, outcomes: &[Outcome<'_>]) -> Result<(), String> {
    ratio_chart(&dir.join("ratios.svg"), outcomes)?;
    for o in outcomes {
        pair_chart(&dir.join(format!("{}.svg", o.spec.id)), o)?;
    }
    Ok(())
}
