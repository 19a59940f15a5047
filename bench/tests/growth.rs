//! The growth command end to end at a small size: it fills a store, starts the real relay binary
//! on it, joins untouched rooms, waits out a mass expiry, and does it again on the kept store.
//! Asserts what happened (every expiring room swept, every probe answered), never timings.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use stelgano_bench::growth::{self, Args};

/// `target/<profile>/stelgano-relay`: cargo builds it for the workspace's tests; with
/// `cargo test -p stelgano-bench` alone it may be missing, so it is built here then.
fn relay_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let bin = profile_dir.join("stelgano-relay");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "stelgano-relay", "--bin", "stelgano-relay"])
            .status()
            .unwrap();
        assert!(status.success(), "could not build the relay binary");
    }
    assert!(bin.is_file(), "no relay binary at {}", bin.display());
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growth_measures_a_small_store_twice() {
    let root = tempfile::tempdir().unwrap();
    let args = Args {
        relay_bin: relay_bin(),
        data_root: root.path().to_path_buf(),
        rooms: vec![400],
        expiring: 150,
        spread: Duration::from_secs(3),
        lead: Duration::from_secs(6),
        samples: 20,
        probe_rate: 50.0,
        drop_caches: false,
        read_timeout: Duration::from_secs(10),
        progress: false,
    };
    for run in 0..2 {
        let points = growth::run(&args).await.unwrap();
        let p = &points[0];
        assert_eq!(p.rooms, 400);
        // At most half the store expires.
        assert_eq!(p.expiring, 150);
        // The first run fills the store; the second reuses it.
        assert_eq!(p.fill_seconds.is_some(), run == 0, "run {run}");
        assert!(p.errors.is_empty(), "run {run}: {:?}", p.errors);
        assert!(!p.quiet_cut_short, "run {run}");
        assert_eq!(p.quiet_join.count, 20, "run {run}");
        assert!(p.sweep_join.count >= 1, "run {run}");
        assert_eq!(p.sweep.expired, 150, "run {run}");
        assert!(
            p.sweep.seconds >= 2.9,
            "run {run}: the last room fell due at 3 s"
        );
        assert!(p.disk_bytes > 0 && p.rss_after_start_bytes > 0);
        assert!(growth::table(&points).contains("400"));
    }
    // A directory the command did not fill is never touched.
    let foreign = root.path().join("rooms-500");
    std::fs::create_dir_all(&foreign).unwrap();
    let err = growth::run(&Args {
        rooms: vec![500],
        ..args
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("remove it"), "{err}");
}
