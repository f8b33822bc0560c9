//! The soak chart for `docs/img/soak.svg`: four panels over the run's minutes (memory, open files,
//! database size, p99 latency), the warm-up shaded. Text is left to the SVG viewer's sans-serif font.

use std::path::Path;

use plotters::prelude::*;

use super::sample::Sample;

const LINE: RGBColor = RGBColor(0x2f, 0x6f, 0xb3);
const WARM_UP: RGBColor = RGBColor(0xee, 0xee, 0xee);

fn failed(e: impl std::fmt::Display) -> String {
    format!("chart: {e}")
}

/// One panel: `value` of every sample against minutes.
fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    samples: &[Sample],
    warm_up_secs: f64,
    value: impl Fn(&Sample) -> f64,
) -> Result<(), String> {
    let end = samples.last().map_or(1.0, |s| s.at_secs / 60.0).max(1.0 / 6.0);
    let top = samples.iter().map(&value).fold(0.0, f64::max).max(f64::MIN_POSITIVE) * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 14))
        .margin(8)
        .x_label_area_size(22)
        .y_label_area_size(52)
        .build_cartesian_2d(0.0..end, 0.0..top)
        .map_err(failed)?;
    chart
        .configure_mesh()
        .x_desc("minutes")
        .x_labels(8)
        .y_labels(4)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(failed)?;
    let warm = Rectangle::new([(0.0, 0.0), ((warm_up_secs / 60.0).min(end), top)], WARM_UP.filled());
    chart.draw_series(std::iter::once(warm)).map_err(failed)?;
    chart
        .draw_series(LineSeries::new(samples.iter().map(|s| (s.at_secs / 60.0, value(s))), LINE.stroke_width(2)))
        .map_err(failed)?;
    Ok(())
}

pub(super) fn write(path: &Path, samples: &[Sample], warm_up_secs: f64) -> Result<(), String> {
    let root = SVGBackend::new(path, (820, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let panels = root.split_evenly((4, 1));
    let mib = |kib: u64| kib as f64 / 1024.0;
    panel(&panels[0], "server RSS (MiB)", samples, warm_up_secs, |s| mib(s.rss_kib))?;
    panel(&panels[1], "open files", samples, warm_up_secs, |s| s.open_files as f64)?;
    panel(&panels[2], "database with WAL (MiB)", samples, warm_up_secs, |s| mib(s.db_bytes / 1024))?;
    panel(&panels[3], "p99 latency of each reading's requests (ms)", samples, warm_up_secs, |s| s.p99_ms)?;
    root.present().map_err(failed)
}
