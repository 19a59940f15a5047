//! Command-line flags and the top-level run: parse, run the scenario, print and save the report.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::error::BenchError;
use crate::report::{Point, Report};
use crate::scenario::{self, Common, MAX_CONCURRENCY};
use crate::target::{Sources, Target};

#[derive(Debug, Parser)]
#[command(
    name = "stelgano-bench",
    version,
    about = "Load generator and baseline for the stelgano relay (loopback only)"
)]
pub struct Cli {
    /// Runtime threads of the load generator (1 = a single-threaded runtime). It shares the box
    /// with the server it measures.
    #[arg(long, global = true, default_value_t = 2)]
    pub threads: usize,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// The bare fastwebsockets baselines for pingpong: echo on any path, and fanout pairs on
    /// /pair/KEY (each frame goes to the partner and back to the sender).
    EchoServer {
        /// Loopback address to listen on (port 0 picks one; the address is printed on stdout).
        #[arg(long, default_value = "127.0.0.1:9001")]
        listen: SocketAddr,
    },
    /// N paired rooms exchange messages turn by turn for D seconds.
    Pingpong(PingpongArgs),
    /// N paired rooms held open and silent: relay memory per room.
    Idle(IdleArgs),
    /// N rooms each left holding one message with no socket: memory per stored message.
    Deaddrop(DeaddropArgs),
    /// Create-and-pair join throughput and latency (with the relay's time floor as configured).
    Joins(JoinsArgs),
    /// Starts the relay binary on stores of N rooms (filled here, kept for reuse) and measures the
    /// size on disk, start time, RSS, joins of untouched rooms, and a mass expiry's sweep.
    Growth(GrowthArgs),
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// The relay's base URL (loopback only).
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    pub url: String,
    /// The relay's pid: RSS and CPU are read from /proc/PID.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Room counts to measure, comma-separated (e.g. 100,1000).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    pub rooms: Vec<usize>,
    /// Runs per room count; the report gives medians.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Rooms set up at once.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Spread client sockets over 127.0.0.1 ..= 127.0.0.N.
    #[arg(long, default_value_t = 8)]
    pub sources: u8,
    /// Longest wait for any one frame or connection, in ms.
    #[arg(long, default_value_t = 10_000)]
    pub read_timeout_ms: u64,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Skip the rest of a set-up phase after this many failed rooms.
    #[arg(long, default_value_t = 200)]
    pub max_errors: u64,
}

/// Where results go; the same for every measuring command.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Append the results as JSON lines to this file ("-" prints them on stdout instead of the
    /// table).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write SVG and PNG charts into this directory.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct PingpongArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Ciphertext size in bytes (before base64).
    #[arg(long, default_value_t = 200)]
    pub payload: usize,
    /// Measurement window, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Exchange before the window opens, seconds.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Pause after set-up before the memory sample, seconds.
    #[arg(long, default_value_t = 1.0)]
    pub settle: f64,
    /// Also run against an echo server already listening here (as echo and as fanout pairs).
    #[arg(long, conflicts_with = "spawn_echo")]
    pub echo_url: Option<String>,
    /// Start `stelgano-bench echo-server` as a child process and run against it too, as echo and
    /// as fanout pairs.
    #[arg(long)]
    pub spawn_echo: bool,
    /// The echo server's pid, when --echo-url is used.
    #[arg(long)]
    pub echo_pid: Option<u32>,
}

#[derive(Debug, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Pause after set-up before the memory sample, seconds.
    #[arg(long, default_value_t = 3.0)]
    pub settle: f64,
    /// How long the rooms are held silent while the relay's CPU is measured, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub hold: f64,
}

#[derive(Debug, Args)]
pub struct DeaddropArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Ciphertext size in bytes (before base64).
    #[arg(long, default_value_t = 200)]
    pub payload: usize,
    /// Pause after the last room before the memory sample, seconds.
    #[arg(long, default_value_t = 3.0)]
    pub settle: f64,
    /// Rooms re-opened afterwards to check they really hold the message.
    #[arg(long, default_value_t = 10)]
    pub verify: usize,
}

#[derive(Debug, Args)]
pub struct JoinsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct GrowthArgs {
    /// The relay binary (default: `stelgano-relay` beside this one).
    #[arg(long)]
    pub relay_bin: Option<PathBuf>,
    /// Where the filled stores are kept (`DIR/rooms-N/`); reused by later runs.
    #[arg(long)]
    pub data_root: PathBuf,
    /// Store sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    pub rooms: Vec<usize>,
    /// Rooms that expire in the same minute (at most half the store).
    #[arg(long, default_value_t = 100_000)]
    pub expiring: usize,
    /// The window their expiry times spread over, seconds.
    #[arg(long, default_value_t = 60.0)]
    pub spread: f64,
    /// From the end of the writes to the first expiry, seconds: covers the starts and the quiet
    /// probes.
    #[arg(long, default_value_t = 90.0)]
    pub lead: f64,
    /// Joins of untouched rooms before the sweep.
    #[arg(long, default_value_t = 1_000)]
    pub samples: usize,
    /// Probe joins per second, one at a time, in both phases.
    #[arg(long, default_value_t = 50.0)]
    pub probe_rate: f64,
    /// Drop the page cache (root only) and time a first start that reads the store from disk.
    #[arg(long)]
    pub drop_caches: bool,
    /// Longest wait for any one reply, in ms.
    #[arg(long, default_value_t = 10_000)]
    pub read_timeout_ms: u64,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl GrowthArgs {
    fn args(&self) -> Result<crate::growth::Args, BenchError> {
        let relay_bin = match &self.relay_bin {
            Some(p) => p.clone(),
            None => std::env::current_exe()?.with_file_name("stelgano-relay"),
        };
        Ok(crate::growth::Args {
            relay_bin,
            data_root: self.data_root.clone(),
            rooms: self.rooms.clone(),
            expiring: self.expiring,
            spread: secs("--spread", self.spread)?,
            lead: secs("--lead", self.lead)?,
            samples: self.samples,
            probe_rate: self.probe_rate,
            drop_caches: self.drop_caches,
            read_timeout: Duration::from_millis(self.read_timeout_ms.clamp(100, 120_000)),
            progress: !self.output.quiet,
        })
    }
}

fn finish_growth(a: &GrowthArgs, points: &[crate::growth::GrowthPoint]) -> Result<(), BenchError> {
    let json: Vec<String> = points
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<_, _>>()?;
    match a.output.json.as_deref() {
        Some(p) if p.as_os_str() == "-" => {
            eprint!("{}", crate::growth::table(points));
            println!("{}", json.join("\n"));
        }
        Some(p) => {
            print!("{}", crate::growth::table(points));
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?;
            for line in json {
                writeln!(f, "{line}")?;
            }
        }
        None => print!("{}", crate::growth::table(points)),
    }
    if let Some(dir) = &a.output.plot {
        write_charts(dir, crate::growth::charts(points));
    }
    Ok(())
}

/// Writes each chart as SVG and PNG; a chart that cannot be drawn is a warning, not a failure.
fn write_charts(dir: &std::path::Path, charts: Vec<crate::plot::Chart>) {
    for chart in charts {
        match crate::plot::write_chart(dir, &chart) {
            Ok(files) => {
                for f in files {
                    eprintln!("wrote {}", f.display());
                }
            }
            Err(e) => eprintln!("warning: chart {} not written: {e}", chart.file_stem),
        }
    }
}

fn secs(what: &str, s: f64) -> Result<Duration, BenchError> {
    scenario::check_seconds(what, s)?;
    Ok(Duration::from_secs_f64(s))
}

impl CommonArgs {
    fn common(&self) -> Result<Common, BenchError> {
        let target = Target::parse(&self.url)?;
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(BenchError::Bound(format!(
                "--concurrency must be 1..={MAX_CONCURRENCY}"
            )));
        }
        Ok(Common {
            sources: Sources::new(&target, self.sources),
            target,
            concurrency: self.concurrency,
            read_timeout: Duration::from_millis(self.read_timeout_ms.clamp(100, 120_000)),
            server_pid: self.server_pid,
            progress: !self.output.quiet,
            max_errors: self.max_errors.max(1),
        })
    }
}

/// The echo server as a child process; killed when dropped.
struct EchoChild {
    child: Child,
    addr: SocketAddr,
}

impl Drop for EchoChild {
    fn drop(&mut self) {
        // Already gone is fine.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_echo() -> Result<EchoChild, BenchError> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["echo-server", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| BenchError::Echo("no stdout".into()))?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening on ws://")
        .and_then(|a| a.parse().ok());
    match addr {
        Some(addr) => Ok(EchoChild { child, addr }),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(BenchError::Echo(format!("unexpected first line {line:?}")))
        }
    }
}

/// Prints/saves the report and draws charts.
fn finish(common: &CommonArgs, points: Vec<Point>, load_start: String) -> Result<(), BenchError> {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let report = Report::with_start_load(command, points, load_start);
    let json = report.json_line();
    match common.output.json.as_deref() {
        Some(p) if p.as_os_str() == "-" => {
            eprint!("{}", report.table());
            println!("{json}");
        }
        Some(p) => {
            print!("{}", report.table());
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?;
            writeln!(f, "{json}")?;
        }
        None => print!("{}", report.table()),
    }
    if let Some(dir) = &common.output.plot {
        write_charts(dir, crate::plot::charts(&report));
    }
    Ok(())
}

pub async fn run(cli: Cli) -> Result<(), BenchError> {
    let load = crate::report::loadavg();
    match cli.command {
        Cmd::EchoServer { listen } => {
            let listener = crate::echo::bind(listen).await?;
            println!("listening on ws://{}", listener.local_addr()?);
            std::io::stdout().flush()?;
            let stop = async {
                // Without a signal handler we simply run until killed.
                let _ = tokio::signal::ctrl_c().await;
            };
            crate::echo::serve(listener, stop).await
        }
        Cmd::Pingpong(a) => {
            let relay = a.common.common()?;
            let args = scenario::pingpong::Args {
                rooms: a.common.rooms.clone(),
                payload_bytes: a.payload,
                duration: secs("--duration", a.duration)?,
                warmup: secs("--warmup", a.warmup)?,
                runs: a.common.runs,
                settle: secs("--settle", a.settle)?,
            };
            args.check()?;
            let child = if a.spawn_echo {
                Some(spawn_echo()?)
            } else {
                None
            };
            let echo = match (&child, &a.echo_url) {
                (Some(c), _) => Some(Common {
                    sources: Sources::new(&Target { addr: c.addr }, a.common.sources),
                    target: Target { addr: c.addr },
                    server_pid: Some(c.child.id()),
                    ..relay.clone()
                }),
                (None, Some(url)) => {
                    let t = Target::parse(url)?;
                    Some(Common {
                        sources: Sources::new(&t, a.common.sources),
                        target: t,
                        server_pid: a.echo_pid,
                        ..relay.clone()
                    })
                }
                (None, None) => None,
            };
            let points = scenario::pingpong::run(&relay, echo.as_ref(), &args).await?;
            drop(child);
            finish(&a.common, points, load)
        }
        Cmd::Idle(a) => {
            let c = a.common.common()?;
            let args = scenario::idle::Args {
                rooms: a.common.rooms.clone(),
                settle: secs("--settle", a.settle)?,
                hold: secs("--hold", a.hold)?,
                runs: a.common.runs,
            };
            let points = scenario::idle::run(&c, &args).await?;
            finish(&a.common, points, load)
        }
        Cmd::Deaddrop(a) => {
            let c = a.common.common()?;
            let args = scenario::deaddrop::Args {
                rooms: a.common.rooms.clone(),
                payload_bytes: a.payload,
                settle: secs("--settle", a.settle)?,
                verify: a.verify,
                runs: a.common.runs,
            };
            let points = scenario::deaddrop::run(&c, &args).await?;
            finish(&a.common, points, load)
        }
        Cmd::Joins(a) => {
            let c = a.common.common()?;
            let args = scenario::joins::Args {
                rooms: a.common.rooms.clone(),
                runs: a.common.runs,
            };
            let points = scenario::joins::run(&c, &args).await?;
            finish(&a.common, points, load)
        }
        Cmd::Growth(a) => {
            let points = crate::growth::run(&a.args()?).await?;
            finish_growth(&a, &points)
        }
    }
}
