//! A short smoke run of every scenario against a real relay started in-process (and the echo
//! server for pingpong): a few rooms, a second or two. Asserts that messages flowed and that no
//! errors occurred; never asserts timings.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use stelgano_bench::report::{Point, Report};
use stelgano_bench::scenario::{self, Common};
use stelgano_bench::target::{Sources, Target};

async fn relay(dir: &std::path::Path) -> stelgano_relay::Relay {
    stelgano_relay::Relay::start(stelgano_relay::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        join_floor: Duration::ZERO,
        join_jitter: Duration::ZERO,
        upgrades_per_min: 0,
        room_creates_per_min: 0,
        ..stelgano_relay::Config::default()
    })
    .await
    .unwrap()
}

fn common(addr: std::net::SocketAddr) -> Common {
    let target = Target::parse(&format!("ws://{addr}")).unwrap();
    Common {
        sources: Sources::new(&target, 2),
        target,
        concurrency: 4,
        read_timeout: Duration::from_secs(10),
        // The relay runs in this process: the /proc path is exercised, the numbers mean little.
        server_pid: Some(std::process::id()),
        progress: false,
        max_errors: 100,
    }
}

fn assert_clean(p: &Point) {
    assert!(
        p.errors.is_empty(),
        "{} {}: errors {:?}",
        p.scenario,
        p.target,
        p.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_against_a_real_relay() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay(dir.path()).await;
    let c = common(relay.local_addr());

    let echo_listener = stelgano_bench::echo::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let echo_addr = echo_listener.local_addr().unwrap();
    let (stop_echo, stopped) = tokio::sync::oneshot::channel::<()>();
    let echo_task = tokio::spawn(stelgano_bench::echo::serve(echo_listener, async {
        let _ = stopped.await;
    }));
    let echo = common(echo_addr);

    let mut points = scenario::pingpong::run(
        &c,
        Some(&echo),
        &scenario::pingpong::Args {
            rooms: vec![3],
            payload_bytes: 200,
            duration: Duration::from_millis(1_000),
            warmup: Duration::from_millis(200),
            runs: 1,
            settle: Duration::ZERO,
        },
    )
    .await
    .unwrap();
    let targets: Vec<&str> = points.iter().map(|p| p.target.as_str()).collect();
    assert_eq!(targets, ["relay", "echo", "fanout"]);
    for p in &points {
        assert_clean(p);
        assert_eq!(p.sockets, 6);
        assert!(p.delivered > 0, "{}: nothing delivered", p.target);
        assert_eq!(p.latency.unwrap().count, p.delivered);
        let server = p.server.as_ref().unwrap();
        assert!(server.cpu_us_per_op.is_some());
    }
    assert_eq!(
        points[0].join_latency.unwrap().count,
        6,
        "two joins per relay room"
    );

    points.extend(
        scenario::idle::run(
            &c,
            &scenario::idle::Args {
                rooms: vec![3],
                settle: Duration::ZERO,
                hold: Duration::from_millis(200),
                runs: 1,
            },
        )
        .await
        .unwrap(),
    );
    let idle = points.last().unwrap();
    assert_clean(idle);
    assert_eq!(idle.sockets, 6);

    points.extend(
        scenario::deaddrop::run(
            &c,
            &scenario::deaddrop::Args {
                rooms: vec![5],
                payload_bytes: 200,
                settle: Duration::ZERO,
                verify: 5,
                runs: 1,
            },
        )
        .await
        .unwrap(),
    );
    let drops = points.last().unwrap();
    assert_clean(drops);
    // Every room was left holding its message, and a pairing join found it there.
    assert_eq!(drops.delivered, 5);
    assert_eq!(drops.join_latency.unwrap().count, 10);

    points.extend(
        scenario::joins::run(
            &c,
            &scenario::joins::Args {
                rooms: vec![4],
                runs: 1,
            },
        )
        .await
        .unwrap(),
    );
    let joins = points.last().unwrap();
    assert_clean(joins);
    assert_eq!(joins.delivered, 4);
    assert_eq!(joins.join_latency.unwrap().count, 8);

    let report = Report::new("smoke".into(), points);
    let relay_group = &report.groups[0];
    assert!(relay_group.ratio_to_echo.is_some());
    assert!(relay_group.cpu_ratio_to_fanout.is_some());
    let v: serde_json::Value = serde_json::from_str(&report.json_line()).unwrap();
    assert_eq!(v["groups"].as_array().unwrap().len(), 6);
    assert!(report.table().lines().count() >= 7);

    let _ = stop_echo.send(());
    echo_task.await.unwrap().unwrap();
    relay.shutdown().await;
}

#[tokio::test]
async fn refuses_targets_off_loopback_and_runs_past_the_bounds() {
    assert!(Target::parse("ws://10.1.2.3:8080").is_err());
    let c = common("127.0.0.1:9".parse().unwrap());
    let too_many = scenario::pingpong::Args {
        rooms: vec![scenario::pingpong::MAX_PINGPONG_ROOMS + 1],
        payload_bytes: 200,
        duration: Duration::from_secs(1),
        warmup: Duration::ZERO,
        runs: 1,
        settle: Duration::ZERO,
    };
    assert!(scenario::pingpong::run(&c, None, &too_many).await.is_err());
    let too_long = scenario::pingpong::Args {
        rooms: vec![1],
        duration: Duration::from_secs(scenario::MAX_SECONDS + 1),
        ..too_many
    };
    assert!(scenario::pingpong::run(&c, None, &too_long).await.is_err());
}
