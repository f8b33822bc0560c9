//! SVG charts for `docs/img/`: one per pair (Portcullis beside its baseline) and one of every ratio
//! against its goal. Text is left to the SVG viewer's sans-serif font, so no font is built in.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::summary::{Goal, Outcome, SCALE, human, is_scale};

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

/// Refresh and login throughput against the sessions in the store, each as a fraction of its figure on the
/// store without them, with the goal's floor.
fn scale_chart(path: &Path, outcomes: &[Outcome<'_>]) -> Result<(), String> {
    let ratio_of = |id: &str| outcomes.iter().find(|o| o.spec.id == id).and_then(|o| o.ratio);
    let floor = outcomes
        .iter()
        .find(|o| is_scale(o.spec.id))
        .and_then(|o| if let Goal::Ratio(g) = o.spec.goal { Some(g) } else { None });
    let root = SVGBackend::new(path, (WIDTH, 320)).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Throughput against the store's size (1 = the same server without the prefill)", ("sans-serif", 16))
        .margin(14)
        .x_label_area_size(30)
        .y_label_area_size(44)
        .build_cartesian_2d(0.0..(SCALE.len() as f64 + 0.6), 0.0..1.3)
        .map_err(failed)?;
    let sizes: Vec<u32> = std::iter::once(0).chain(SCALE.iter().map(|s| s.0)).collect();
    chart
        .configure_mesh()
        .max_light_lines(0)
        .x_labels(sizes.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() > 0.01 || i < 0.0 {
                return String::new();
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a small index")]
            match sizes.get(i as usize) {
                Some(0) => "no prefill".to_owned(),
                Some(n) => format!("{} sessions", human(f64::from(*n))),
                None => String::new(),
            }
        })
        .y_labels(7)
        .y_label_formatter(&|v| human(*v))
        .draw()
        .map_err(failed)?;
    if let Some(floor) = floor {
        let line = LineSeries::new([(0.0, floor), (SCALE.len() as f64 + 0.6, floor)], BLACK.stroke_width(1));
        chart
            .draw_series(line)
            .map_err(failed)?
            .label(format!("goal: at least {}", human(floor)))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.stroke_width(1)));
    }
    for (name, color, refresh) in [("refresh", OURS, true), ("complete logins", PEER, false)] {
        let points: Vec<(f64, f64)> = std::iter::once((0.0, 1.0))
            .chain(SCALE.iter().enumerate().filter_map(|(i, (_, refresh_id, login_id))| {
                ratio_of(if refresh { refresh_id } else { login_id }).map(|r| ((i + 1) as f64, r))
            }))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(failed)?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled()))).map_err(failed)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()
        .map_err(failed)?;
    root.present().map_err(failed)
}

pub(crate) fn write(dir: &Path, outcomes: &[Outcome<'_>]) -> Result<(), String> {
    ratio_chart(&dir.join("ratios.svg"), outcomes)?;
    scale_chart(&dir.join("scale.svg"), outcomes)?;
    for o in outcomes.iter().filter(|o| !is_scale(o.spec.id)) {
        pair_chart(&dir.join(format!("{}.svg", o.spec.id)), o)?;
    }
    Ok(())
}
