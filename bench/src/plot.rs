//! `--plot DIR`: charts of throughput, latency and memory against room count (SVG and PNG).
//!
//! PNG text needs a font file; the charts use DejaVu Sans from the usual system path (Debian's
//! `fonts-dejavu-core`). Without it the charts are skipped with a warning; the run still reports.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::BenchError;
use crate::report::{Group, Report};

const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers the font once per process; `false` when none is found.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        for p in FONT_PATHS {
            if let Ok(bytes) = std::fs::read(p) {
                // plotters keeps fonts for the life of the process; leaking the one copy is that.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// One line on a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A chart: y against room count (log scale when the counts span more than a decade).
#[derive(Debug, Clone)]
pub struct Chart {
    pub file_stem: String,
    pub title: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let all: Vec<(f64, f64)> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    let (x_min, x_max) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let y_max = all.iter().fold(0.0f64, |m, p| m.max(p.1)) * 1.15;
    let y_max = if y_max > 0.0 { y_max } else { 1.0 };
    let x_lo = (x_min * 0.8).max(1.0);
    let x_hi = (x_max * 1.25).max(x_lo + 1.0);
    let mut ctx = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), 0.0..y_max)
        .map_err(e)?;
    ctx.configure_mesh()
        .x_desc("rooms")
        .y_desc(chart.y_label.as_str())
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| {
            if y.abs() >= 100.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.1}")
            }
        })
        .draw()
        .map_err(e)?;
    for (i, s) in chart.series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mut pts = s.points.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        ctx.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(e)?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        ctx.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .map_err(e)?;
    }
    ctx.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

/// Writes `DIR/{stem}.svg` and `DIR/{stem}.png`; returns the files written.
pub fn write_chart(dir: &Path, chart: &Chart) -> Result<Vec<PathBuf>, BenchError> {
    if !font_ready() {
        return Err(BenchError::Plot(
            "no DejaVu Sans font found; install fonts-dejavu-core".into(),
        ));
    }
    if chart.series.iter().all(|s| s.points.is_empty()) {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(dir)?;
    let svg = dir.join(format!("{}.svg", chart.file_stem));
    let png = dir.join(format!("{}.png", chart.file_stem));
    draw(SVGBackend::new(&svg, (900, 540)).into_drawing_area(), chart).map_err(BenchError::Plot)?;
    draw(
        BitMapBackend::new(&png, (900, 540)).into_drawing_area(),
        chart,
    )
    .map_err(BenchError::Plot)?;
    Ok(vec![svg, png])
}

fn series(groups: &[&Group], name: &str, f: impl Fn(&Group) -> Option<f64>) -> Series {
    Series {
        name: name.to_owned(),
        points: groups
            .iter()
            .filter_map(|g| Some((g.rooms as f64, f(g)?)))
            .collect(),
    }
}

/// The charts a report calls for: one set per scenario it holds.
pub fn charts(report: &Report) -> Vec<Chart> {
    let of = |scenario: &str, target: &str| -> Vec<&Group> {
        report
            .groups
            .iter()
            .filter(|g| g.scenario == scenario && g.target == target)
            .collect()
    };
    let ms = |v: Option<f64>| v.map(|us| us / 1000.0);
    let mut out = Vec::new();
    let (relay, echo, fanout) = (
        of("pingpong", "relay"),
        of("pingpong", "echo"),
        of("pingpong", "fanout"),
    );
    if !relay.is_empty() || !echo.is_empty() {
        out.push(Chart {
            file_stem: "pingpong-throughput".into(),
            title: "pingpong throughput (median of runs)".into(),
            y_label: "delivered messages / s".into(),
            series: vec![
                series(&relay, "relay", |g| g.median.msgs_per_s),
                series(&echo, "echo baseline", |g| g.median.msgs_per_s),
                series(&fanout, "fanout baseline", |g| g.median.msgs_per_s),
            ],
        });
        out.push(Chart {
            file_stem: "pingpong-latency".into(),
            title: "pingpong send → receive latency".into(),
            y_label: "ms".into(),
            series: vec![
                series(&relay, "relay p50", |g| ms(g.median.p50_us)),
                series(&relay, "relay p99", |g| ms(g.median.p99_us)),
                series(&relay, "relay p99.9", |g| ms(g.median.p999_us)),
                series(&echo, "echo p99", |g| ms(g.median.p99_us)),
            ],
        });
        let cpu = |g: &Group| g.median.cpu_us_per_op;
        out.push(Chart {
            file_stem: "pingpong-cpu".into(),
            title: "server CPU per delivered message".into(),
            y_label: "µs / message".into(),
            series: vec![
                // Same order as the throughput chart, so each target keeps its colour.
                series(&relay, "relay", cpu),
                series(&echo, "echo baseline (1 in, 1 out)", cpu),
                series(&fanout, "fanout baseline (1 in, 2 out)", cpu),
            ],
        });
    }
    for scenario in ["idle", "deaddrop"] {
        let gs = of(scenario, "relay");
        if !gs.is_empty() {
            out.push(Chart {
                file_stem: format!("{scenario}-memory"),
                title: format!("{scenario}: relay RSS per room"),
                y_label: "bytes / room".into(),
                series: vec![series(&gs, "relay", |g| g.median.bytes_per_room)],
            });
        }
    }
    let gs = of("joins", "relay");
    if !gs.is_empty() {
        out.push(Chart {
            file_stem: "joins-latency".into(),
            title: "join latency".into(),
            y_label: "ms".into(),
            series: vec![
                series(&gs, "join p50", |g| ms(g.median.join_p50_us)),
                series(&gs, "join p99", |g| ms(g.median.join_p99_us)),
            ],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Point;
    use crate::stats::LatencySummary;

    #[test]
    fn charts_follow_the_scenarios_in_the_report() {
        let p = |target: &str, rooms, rate| Point {
            scenario: "pingpong".into(),
            target: String::from(target),
            rooms,
            msgs_per_s: Some(rate),
            latency: Some(LatencySummary {
                p99_us: 1000,
                ..LatencySummary::default()
            }),
            ..Point::default()
        };
        let report = Report::new(
            "t".into(),
            vec![
                p("relay", 10, 100.0),
                p("echo", 10, 300.0),
                p("relay", 100, 200.0),
            ],
        );
        let cs = charts(&report);
        let stems: Vec<&str> = cs.iter().map(|c| c.file_stem.as_str()).collect();
        assert_eq!(
            stems,
            ["pingpong-throughput", "pingpong-latency", "pingpong-cpu"]
        );
        assert_eq!(cs[0].series[0].points, vec![(10.0, 100.0), (100.0, 200.0)]);
        assert_eq!(cs[1].series[1].points, vec![(10.0, 1.0), (100.0, 1.0)]);
    }

    #[test]
    fn writes_svg_and_png_when_a_font_is_present() {
        if !font_ready() {
            let required = std::env::var("STELGANO_REQUIRE_SYSTEM_DEPS").as_deref() == Ok("1");
            assert!(
                !required,
                "no DejaVu Sans font and STELGANO_REQUIRE_SYSTEM_DEPS=1 (apt-get install fonts-dejavu-core)"
            );
            eprintln!("*** SKIPPED: no DejaVu Sans font; apt-get install fonts-dejavu-core ***");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let chart = Chart {
            file_stem: "c".into(),
            title: "t".into(),
            y_label: "y".into(),
            series: vec![Series {
                name: "s".into(),
                points: vec![(10.0, 1.0), (1000.0, 3.0)],
            }],
        };
        let files = write_chart(dir.path(), &chart).unwrap();
        assert_eq!(files.len(), 2);
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(svg.contains("<svg"));
        let png = std::fs::read(&files[1]).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
