//! Resource use of a server process, read from `/proc/PID`: resident memory and CPU time.
//!
//! CPU time is `utime + stime` from `/proc/PID/stat` (it includes threads that have exited), in
//! clock ticks converted with `getconf CLK_TCK`. RSS is `VmRSS` from `/proc/PID/status`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::error::BenchError;

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    pub rss_bytes: u64,
    /// User plus system CPU time since the process started.
    pub cpu: Duration,
}

/// `utime` and `stime` (fields 14 and 15) from the text of `/proc/PID/stat`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // `after` starts at field 3 (state); utime is field 14, i.e. the 12th from here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` in bytes from the text of `/proc/PID/status`.
pub fn parse_status_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The soft `Max open files` limit from the text of `/proc/self/limits`.
pub fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn clock_ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            // Linux's USER_HZ is 100 on every mainstream architecture.
            .unwrap_or(100)
    })
}

/// Reads `/proc/PID/stat` and `/proc/PID/status` now.
pub fn sample(pid: u32) -> Result<ProcSample, BenchError> {
    let fail = |why: String| BenchError::Proc { pid, why };
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| fail(e.to_string()))?;
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| fail(e.to_string()))?;
    let ticks = parse_stat_ticks(&stat).ok_or_else(|| fail("unreadable stat".into()))?;
    let rss_bytes = parse_status_rss(&status).ok_or_else(|| fail("no VmRSS".into()))?;
    let hz = clock_ticks_per_second();
    Ok(ProcSample {
        rss_bytes,
        cpu: Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / hz),
    })
}

/// This process's open-file limit (the bench holds two sockets per room).
pub fn open_files_limit() -> Option<u64> {
    parse_open_files_limit(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

/// Samples a process's RSS in the background and remembers the peak.
#[derive(Debug)]
pub struct PeakWatch {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakWatch {
    pub fn start(pid: u32, every: Duration) -> PeakWatch {
        let peak = Arc::new(AtomicU64::new(0));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match sample(pid) {
                    Ok(s) => {
                        p.fetch_max(s.rss_bytes, Ordering::Relaxed);
                    }
                    // The process is gone; nothing more to watch.
                    Err(_) => return,
                }
            }
        });
        PeakWatch { peak, task }
    }

    pub fn stop(self) -> u64 {
        self.task.abort();
        self.peak.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let stat = "4242 (stelgano relay) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    150 25 0 0 20 0 4 0 123456 1000000 2500 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(175));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn parses_rss_and_file_limit() {
        let status =
            "Name:\tstelgano-relay\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        assert_eq!(parse_status_rss(status), Some(5120 * 1024));
        assert_eq!(parse_status_rss("Name: x\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            20000                20000                files     \n";
        assert_eq!(parse_open_files_limit(limits), Some(20000));
    }

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_bytes > 0);
        assert!(open_files_limit().unwrap() > 0);
    }
}
