//! Report math and output: one JSON line for machines, a table for people.
//!
//! A scenario produces one [`Point`] per run; runs of the same scenario, target and room count
//! form a [`Group`] whose headline figures are medians over its runs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::stats::LatencySummary;

/// Resource use of the measured server during one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerUsage {
    pub pid: u32,
    /// Before the scenario opened any socket.
    pub rss_before_bytes: u64,
    /// After set-up (rooms created, sockets joined, messages left) and a settling pause.
    pub rss_loaded_bytes: u64,
    pub rss_peak_bytes: u64,
    /// CPU time used inside the measurement window.
    pub cpu_seconds: f64,
    /// `cpu_seconds` over the window's wall time; 200 % is both cores of a 2-core box.
    pub cpu_percent: f64,
    /// CPU time per delivered message (pingpong) or per join (joins).
    pub cpu_us_per_op: Option<f64>,
    /// (loaded − before) / rooms.
    pub bytes_per_room: Option<f64>,
}

/// One run of one scenario against one target at one room count.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Point {
    pub scenario: String,
    /// `relay` or `echo`.
    pub target: String,
    pub rooms: usize,
    /// Client sockets open during the measured phase.
    pub sockets: usize,
    pub payload_bytes: usize,
    /// Length of the measurement window.
    pub seconds: f64,
    /// Messages that reached the other party inside the window (pingpong).
    pub delivered: u64,
    pub msgs_per_s: Option<f64>,
    /// Send → the other party's `new_message` (relay) or → the echo (echo).
    pub latency: Option<LatencySummary>,
    /// `join` frame → its reply.
    pub join_latency: Option<LatencySummary>,
    pub joins_per_s: Option<f64>,
    pub errors: BTreeMap<String, u64>,
    pub server: Option<ServerUsage>,
    /// The load generator's own CPU over the window, in percent of one core (it shares the box).
    pub client_cpu_percent: Option<f64>,
}

/// Median figures of a group's runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Medians {
    pub msgs_per_s: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    pub join_p50_us: Option<f64>,
    pub join_p99_us: Option<f64>,
    pub joins_per_s: Option<f64>,
    pub cpu_us_per_op: Option<f64>,
    pub cpu_percent: Option<f64>,
    pub bytes_per_room: Option<f64>,
    pub client_cpu_percent: Option<f64>,
    pub errors: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub scenario: String,
    pub target: String,
    pub rooms: usize,
    pub median: Medians,
    /// The relay's median msgs/s over the echo server's at the same room count, same invocation.
    pub ratio_to_echo: Option<f64>,
    /// The relay's median server CPU per message over the fanout baseline's (the same I/O per
    /// message with no protocol work) at the same room count, same invocation.
    pub cpu_ratio_to_fanout: Option<f64>,
    pub runs: Vec<Point>,
}

/// The machine the numbers came from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    /// `/proc/loadavg` when the invocation started and when it ended: other work on the box
    /// shows here.
    pub loadavg_start: String,
    pub loadavg_end: String,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            loadavg_start: String::new(),
            loadavg_end: loadavg(),
        }
    }
}

/// The first three fields of `/proc/loadavg` (1, 5 and 15 minute load averages).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Everything one invocation measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    /// UTC, when the report was written.
    pub date: String,
    pub machine: Machine,
    /// The command line, for reproduction.
    pub command: String,
    pub groups: Vec<Group>,
}

/// Events per second over a window; `None` for an empty window.
pub fn rate(count: u64, window: Duration) -> Option<f64> {
    let s = window.as_secs_f64();
    (s > 0.0).then(|| count as f64 / s)
}

/// Memory growth per room; negative when the allocator gave memory back.
pub fn bytes_per_room(before: u64, after: u64, rooms: usize) -> Option<f64> {
    (rooms > 0).then(|| (after as f64 - before as f64) / rooms as f64)
}

/// CPU microseconds per operation.
pub fn cpu_us_per_op(cpu: Duration, ops: u64) -> Option<f64> {
    (ops > 0).then(|| cpu.as_secs_f64() * 1e6 / ops as f64)
}

/// CPU time over wall time, in percent of one core.
pub fn cpu_percent(cpu: Duration, wall: Duration) -> f64 {
    let w = wall.as_secs_f64();
    if w > 0.0 {
        100.0 * cpu.as_secs_f64() / w
    } else {
        0.0
    }
}

/// The median (mean of the middle two for an even count); `None` for no values.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

fn median_of(runs: &[Point], f: impl Fn(&Point) -> Option<f64>) -> Option<f64> {
    median(runs.iter().filter_map(f))
}

impl Medians {
    pub fn of(runs: &[Point]) -> Medians {
        Medians {
            msgs_per_s: median_of(runs, |p| p.msgs_per_s),
            p50_us: median_of(runs, |p| p.latency.map(|l| l.p50_us as f64)),
            p99_us: median_of(runs, |p| p.latency.map(|l| l.p99_us as f64)),
            p999_us: median_of(runs, |p| p.latency.map(|l| l.p999_us as f64)),
            join_p50_us: median_of(runs, |p| p.join_latency.map(|l| l.p50_us as f64)),
            join_p99_us: median_of(runs, |p| p.join_latency.map(|l| l.p99_us as f64)),
            joins_per_s: median_of(runs, |p| p.joins_per_s),
            cpu_us_per_op: median_of(runs, |p| p.server.as_ref().and_then(|s| s.cpu_us_per_op)),
            cpu_percent: median_of(runs, |p| p.server.as_ref().map(|s| s.cpu_percent)),
            bytes_per_room: median_of(runs, |p| p.server.as_ref().and_then(|s| s.bytes_per_room)),
            client_cpu_percent: median_of(runs, |p| p.client_cpu_percent),
            errors: runs.iter().map(|p| p.errors.values().sum::<u64>()).sum(),
        }
    }
}

/// Groups runs by (scenario, target, rooms) in first-seen order, takes medians, and sets each relay
/// group's ratios to the echo and fanout groups with the same scenario and room count.
pub fn group(points: Vec<Point>) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for p in points {
        match groups
            .iter_mut()
            .find(|g| g.scenario == p.scenario && g.target == p.target && g.rooms == p.rooms)
        {
            Some(g) => g.runs.push(p),
            None => groups.push(Group {
                scenario: p.scenario.clone(),
                target: p.target.clone(),
                rooms: p.rooms,
                median: Medians::default(),
                ratio_to_echo: None,
                cpu_ratio_to_fanout: None,
                runs: vec![p],
            }),
        }
    }
    for g in &mut groups {
        g.median = Medians::of(&g.runs);
    }
    let baseline = |target: &str, of: fn(&Medians) -> Option<f64>| -> Vec<(String, usize, f64)> {
        groups
            .iter()
            .filter(|g| g.target == target)
            .filter_map(|g| Some((g.scenario.clone(), g.rooms, of(&g.median)?)))
            .filter(|(_, _, v)| *v > 0.0)
            .collect()
    };
    let echo = baseline("echo", |m| m.msgs_per_s);
    let fanout = baseline("fanout", |m| m.cpu_us_per_op);
    let ratio = |base: &[(String, usize, f64)], g: &Group, v: Option<f64>| {
        let (_, _, b) = base
            .iter()
            .find(|(s, r, _)| *s == g.scenario && *r == g.rooms)?;
        Some(v? / b)
    };
    for g in groups.iter_mut().filter(|g| g.target == "relay") {
        g.ratio_to_echo = ratio(&echo, g, g.median.msgs_per_s);
        g.cpu_ratio_to_fanout = ratio(&fanout, g, g.median.cpu_us_per_op);
    }
    groups
}

impl Report {
    pub fn new(command: String, points: Vec<Point>) -> Report {
        Report::with_start_load(command, points, String::new())
    }

    /// As [`Report::new`], recording the load average seen when the invocation started.
    pub fn with_start_load(command: String, points: Vec<Point>, loadavg_start: String) -> Report {
        let mut machine = Machine::detect();
        machine.loadavg_start = loadavg_start;
        Report {
            tool: "stelgano-bench",
            version: env!("CARGO_PKG_VERSION"),
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            machine,
            command,
            groups: group(points),
        }
    }

    /// The whole report as one line of JSON.
    pub fn json_line(&self) -> String {
        // Plain data with string keys: serialisation cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A fixed-width table; columns that no group fills are left out.
    pub fn table(&self) -> String {
        let dash = || "-".to_owned();
        let num = |v: Option<f64>, digits: usize| v.map_or_else(dash, |x| format!("{x:.digits$}"));
        let ms = |v: Option<f64>| v.map_or_else(dash, |us| format!("{:.2}", us / 1000.0));
        let kib = |v: Option<f64>| v.map_or_else(dash, |b| format!("{:.0}", b));
        let cols: Vec<(&str, Vec<String>)> = vec![
            (
                "scenario",
                self.groups.iter().map(|g| g.scenario.clone()).collect(),
            ),
            (
                "target",
                self.groups.iter().map(|g| g.target.clone()).collect(),
            ),
            (
                "rooms",
                self.groups.iter().map(|g| g.rooms.to_string()).collect(),
            ),
            (
                "runs",
                self.groups
                    .iter()
                    .map(|g| g.runs.len().to_string())
                    .collect(),
            ),
            (
                "msgs/s",
                self.groups
                    .iter()
                    .map(|g| num(g.median.msgs_per_s, 0))
                    .collect(),
            ),
            (
                "vs echo",
                self.groups
                    .iter()
                    .map(|g| {
                        g.ratio_to_echo
                            .map_or_else(dash, |r| format!("{:.0}%", r * 100.0))
                    })
                    .collect(),
            ),
            (
                "p50 ms",
                self.groups.iter().map(|g| ms(g.median.p50_us)).collect(),
            ),
            (
                "p99 ms",
                self.groups.iter().map(|g| ms(g.median.p99_us)).collect(),
            ),
            (
                "p99.9 ms",
                self.groups.iter().map(|g| ms(g.median.p999_us)).collect(),
            ),
            (
                "joins/s",
                self.groups
                    .iter()
                    .map(|g| num(g.median.joins_per_s, 0))
                    .collect(),
            ),
            (
                "join p50 ms",
                self.groups
                    .iter()
                    .map(|g| ms(g.median.join_p50_us))
                    .collect(),
            ),
            (
                "join p99 ms",
                self.groups
                    .iter()
                    .map(|g| ms(g.median.join_p99_us))
                    .collect(),
            ),
            (
                "server µs/op",
                self.groups
                    .iter()
                    .map(|g| num(g.median.cpu_us_per_op, 1))
                    .collect(),
            ),
            (
                "µs/op vs fanout",
                self.groups
                    .iter()
                    .map(|g| {
                        g.cpu_ratio_to_fanout
                            .map_or_else(dash, |r| format!("{r:.2}x"))
                    })
                    .collect(),
            ),
            (
                "server cpu %",
                self.groups
                    .iter()
                    .map(|g| num(g.median.cpu_percent, 0))
                    .collect(),
            ),
            (
                "bench cpu %",
                self.groups
                    .iter()
                    .map(|g| num(g.median.client_cpu_percent, 0))
                    .collect(),
            ),
            (
                "bytes/room",
                self.groups
                    .iter()
                    .map(|g| kib(g.median.bytes_per_room))
                    .collect(),
            ),
            (
                "errors",
                self.groups
                    .iter()
                    .map(|g| g.median.errors.to_string())
                    .collect(),
            ),
        ];
        let cols: Vec<(&str, Vec<String>)> = cols
            .into_iter()
            .filter(|(h, v)| *h == "errors" || v.iter().any(|c| c != "-"))
            .collect();
        let widths: Vec<usize> = cols
            .iter()
            .map(|(h, v)| {
                v.iter()
                    .map(|c| c.chars().count())
                    .chain([h.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let line = |cells: Vec<&str>, out: &mut String| {
            let row: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:>w$}"))
                .collect();
            out.push_str(row.join("  ").trim_end());
            out.push('\n');
        };
        line(cols.iter().map(|(h, _)| *h).collect(), &mut out);
        for i in 0..self.groups.len() {
            line(cols.iter().map(|(_, v)| v[i].as_str()).collect(), &mut out);
        }
        let errors: Vec<String> = self
            .groups
            .iter()
            .flat_map(|g| {
                let mut all: BTreeMap<&str, u64> = BTreeMap::new();
                for r in &g.runs {
                    for (k, v) in &r.errors {
                        *all.entry(k).or_default() += v;
                    }
                }
                all.into_iter()
                    .map(|(k, v)| format!("  {} {} {}: {k} × {v}", g.scenario, g.target, g.rooms))
                    .collect::<Vec<_>>()
            })
            .collect();
        if !errors.is_empty() {
            out.push_str("errors by reason:\n");
            out.push_str(&errors.join("\n"));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pingpong(target: &str, rooms: usize, rate: f64, p99: u64) -> Point {
        Point {
            scenario: "pingpong".into(),
            target: target.into(),
            rooms,
            msgs_per_s: Some(rate),
            latency: Some(LatencySummary {
                count: 10,
                p50_us: p99 / 2,
                p99_us: p99,
                p999_us: p99 * 2,
                ..LatencySummary::default()
            }),
            ..Point::default()
        }
    }

    #[test]
    fn rates_and_per_unit_figures() {
        assert_eq!(rate(30_000, Duration::from_secs(10)), Some(3_000.0));
        assert_eq!(rate(5, Duration::ZERO), None);
        assert_eq!(bytes_per_room(1_000_000, 17_000_000, 1_000), Some(16_000.0));
        assert_eq!(bytes_per_room(2_000, 1_000, 10), Some(-100.0));
        assert_eq!(bytes_per_room(1, 2, 0), None);
        let per = cpu_us_per_op(Duration::from_millis(600), 40_000).unwrap();
        assert!((per - 15.0).abs() < 1e-9);
        assert_eq!(cpu_us_per_op(Duration::from_secs(1), 0), None);
        assert!((cpu_percent(Duration::from_secs(3), Duration::from_secs(2)) - 150.0).abs() < 1e-9);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median([f64::NAN, 7.0]), Some(7.0));
        assert_eq!(median(std::iter::empty()), None);
    }

    #[test]
    fn groups_take_medians_and_ratio_to_echo() {
        let points = vec![
            pingpong("relay", 100, 40_000.0, 900),
            pingpong("echo", 100, 100_000.0, 300),
            pingpong("relay", 100, 30_000.0, 1_100),
            pingpong("echo", 100, 80_000.0, 400),
            pingpong("relay", 100, 35_000.0, 1_000),
            pingpong("echo", 100, 90_000.0, 350),
            pingpong("relay", 1000, 20_000.0, 5_000),
        ];
        let groups = group(points);
        assert_eq!(groups.len(), 3);
        let relay = &groups[0];
        assert_eq!((relay.target.as_str(), relay.runs.len()), ("relay", 3));
        assert_eq!(relay.median.msgs_per_s, Some(35_000.0));
        assert_eq!(relay.median.p99_us, Some(1_000.0));
        assert_eq!(relay.median.p50_us, Some(500.0));
        let ratio = relay.ratio_to_echo.unwrap();
        assert!((ratio - 35_000.0 / 90_000.0).abs() < 1e-12);
        assert_eq!(groups[1].ratio_to_echo, None, "echo has no ratio to itself");
        assert_eq!(groups[2].ratio_to_echo, None, "no echo run at 1000 rooms");
    }

    #[test]
    fn relay_cpu_per_message_is_set_against_the_fanout_baseline() {
        let with_cpu = |target: &str, rooms: usize, us: f64| Point {
            server: Some(ServerUsage {
                cpu_us_per_op: Some(us),
                ..ServerUsage::default()
            }),
            ..pingpong(target, rooms, 1.0, 10)
        };
        let points = vec![
            with_cpu("relay", 100, 20.0),
            with_cpu("fanout", 100, 16.0),
            with_cpu("relay", 100, 24.0),
            with_cpu("fanout", 100, 12.0),
            with_cpu("relay", 1000, 30.0),
        ];
        let table = Report::new("t".into(), points.clone()).table();
        assert!(table.contains("µs/op vs fanout") && table.contains("1.57x"));
        let groups = group(points);
        let relay = &groups[0];
        assert_eq!(relay.median.cpu_us_per_op, Some(22.0));
        let r = relay.cpu_ratio_to_fanout.unwrap();
        assert!((r - 22.0 / 14.0).abs() < 1e-12);
        assert_eq!(groups[1].cpu_ratio_to_fanout, None);
        assert_eq!(groups[2].cpu_ratio_to_fanout, None, "no fanout run at 1000");
    }

    #[test]
    fn json_is_one_line_and_the_table_has_a_row_per_group() {
        let mut p = pingpong("relay", 10, 1234.0, 800);
        p.errors.insert("timeout".into(), 2);
        let r = Report::new("stelgano-bench pingpong".into(), vec![p]);
        let j = r.json_line();
        assert!(!j.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["groups"][0]["median"]["msgs_per_s"], 1234.0);
        assert_eq!(v["groups"][0]["median"]["errors"], 2);
        let t = r.table();
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("msgs/s") && lines[0].contains("p99 ms"));
        assert!(!lines[0].contains("joins/s"), "empty columns are dropped");
        assert!(lines[1].contains("1234") && lines[1].contains("0.80"));
        assert!(t.contains("timeout × 2"));
    }
}
