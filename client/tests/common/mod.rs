//! Shared helpers of the client's integration tests: a real relay on 127.0.0.1:0 and a way to run
//! the `stelgano` binary as a separate process, the way a user would.
#![allow(dead_code, clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// A relay running in this test process, with its data directory.
pub struct TestRelay {
    pub relay: stelgano_relay::Relay,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl TestRelay {
    pub async fn start() -> TestRelay {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut stelgano_relay::Config)) -> TestRelay {
        let dir = tempfile::tempdir().unwrap();
        let mut config = stelgano_relay::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            // The spec's 500 ms time floor, off for fast tests.
            join_floor: Duration::ZERO,
            join_jitter: Duration::ZERO,
            // Every process of a test comes from 127.0.0.1.
            upgrades_per_min: 100_000,
            room_creates_per_min: 100_000,
            ..stelgano_relay::Config::default()
        };
        tweak(&mut config);
        let relay = stelgano_relay::Relay::start(config).await.unwrap();
        let url = format!("ws://{}", relay.local_addr());
        TestRelay { relay, url, dir }
    }

    pub async fn stop(self) {
        self.relay.shutdown().await;
    }
}

/// One party: a number and a PIN, given to the CLI through the environment as a script would.
#[derive(Clone, Debug)]
pub struct Party {
    pub phone: String,
    pub pin: String,
}

/// What one `stelgano` run printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success, got {self:?}");
        self
    }
}

impl Party {
    pub fn new(phone: &str, pin: &str) -> Party {
        Party {
            phone: phone.to_owned(),
            pin: pin.to_owned(),
        }
    }

    /// Runs `stelgano --relay URL ARGS...`, optionally feeding `stdin`.
    pub async fn run(&self, relay: &str, args: &[&str], stdin: Option<&str>) -> Run {
        self.run_env(relay, args, stdin, &[]).await
    }

    /// As [`run`](Self::run), with extra environment variables.
    pub async fn run_env(
        &self,
        relay: &str,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> Run {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_stelgano"));
        cmd.env_remove("STELGANO_CA_FILE");
        cmd.envs(env.iter().copied());
        cmd.arg("--relay")
            .arg(relay)
            .args(args)
            .env("STELGANO_PHONE", &self.phone)
            .env("STELGANO_PIN", &self.pin)
            .env_remove("STELGANO_RELAY")
            .env_remove("STELGANO_CODE")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).await.unwrap();
            drop(pipe);
        }
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("stelgano did not finish within 120 s")
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }
}

/// `alice` creates a room, `bob` joins with the pairing code, `alice` sends `text` and `bob`
/// reads it: the whole exchange, every run with the extra environment `env` (e.g. a CA file).
pub async fn exchange(url: &str, env: &[(&str, &str)], alice: &Party, bob: &Party, text: &str) {
    let created = alice.run_env(url, &["create"], None, env).await;
    created.ok();
    let code = created.stdout.trim().to_owned();
    bob.run_env(url, &["join", "--code", &code], None, env)
        .await
        .ok();
    alice.run_env(url, &["send", text], None, env).await.ok();
    let read = bob
        .run_env(url, &["read", "--wait", "--timeout", "60"], None, env)
        .await;
    read.ok();
    assert!(read.stdout.contains(text), "{read:?}");
}
