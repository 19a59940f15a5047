//! The deployment docs/DEPLOY.md describes, run for real: Debian's nginx, started by the test on
//! loopback with the nginx block read from DEPLOY.md and a certificate made at test time,
//! terminating TLS in front of a relay with `trust_forwarded_for`. The `stelgano` CLI completes
//! an exchange over `wss://` through it; per-IP limits count each client address behind the proxy
//! on its own (two source addresses, two budgets); nginx writes no access log line.
//!
//! Needs nginx (Debian: `nginx-light` or `nginx`); without it the test prints a loud SKIP and
//! passes, unless `STELGANO_REQUIRE_SYSTEM_DEPS=1`, when it fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{Party, TestRelay};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio_rustls::rustls::{self, pki_types};

const DEPLOY: &str = include_str!("../../docs/DEPLOY.md");
/// The per-IP budget of upgrades and look-ups the relay runs with here.
const PER_MIN: u32 = 20;

fn nginx() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nginx"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let sbin = PathBuf::from("/usr/sbin/nginx");
        sbin.is_file().then_some(sbin)
    })
}

/// The nginx block of docs/DEPLOY.md (its indented lines under "## nginx").
fn documented_site() -> String {
    let section = DEPLOY
        .split("\n## nginx")
        .nth(1)
        .expect("DEPLOY.md has an nginx section");
    let section = section.split("\n## ").next().unwrap();
    let mut out = String::new();
    for line in section.lines() {
        if let Some(code) = line.strip_prefix("    ") {
            out.push_str(code);
            out.push('\n');
        } else if line.is_empty() {
            out.push('\n');
        }
    }
    assert!(
        out.contains("server {") && out.contains("proxy_pass"),
        "{out}"
    );
    out
}

/// The documented site, pointed at this test's certificate, port and relay.
fn site_for(port: u16, relay: SocketAddr, cert: &Path, key: &Path) -> String {
    let mut site = String::new();
    for line in documented_site().lines() {
        let t = line.trim_start();
        let indent = &line[..line.len() - t.len()];
        let line = if t.starts_with("listen [::]") {
            continue;
        } else if t.starts_with("listen ") {
            format!("{indent}listen 127.0.0.1:{port} ssl;")
        } else if t.starts_with("server_name ") {
            format!("{indent}server_name localhost;")
        } else if t.starts_with("ssl_certificate_key ") {
            format!("{indent}ssl_certificate_key {};", key.display())
        } else if t.starts_with("ssl_certificate ") {
            format!("{indent}ssl_certificate {};", cert.display())
        } else if t.starts_with("proxy_pass ") {
            format!("{indent}proxy_pass http://{relay};")
        } else {
            line.to_owned()
        };
        site.push_str(&line);
        site.push('\n');
    }
    site
}

/// nginx in the foreground, one process, everything under `dir`; killed on drop.
struct Nginx(Child);

impl Nginx {
    fn start(binary: &Path, dir: &Path, site: &str) -> Nginx {
        for sub in ["logs", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/logs/error.log warn;\nevents {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/logs/access.log;\n  client_body_temp_path {d}/tmp/body;\n  \
             proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n  \
             uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n{site}}}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let check = Command::new(binary)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path)
            .arg("-t")
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "nginx refuses the documented site: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Nginx(child)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TLS client from source address `from` that trusts only `cert_pem`: GET `path`, the status.
async fn get_from(from: [u8; 4], port: u16, cert_pem: &str, path: &str) -> u16 {
    let mut roots = rustls::RootCertStore::empty();
    let der = pki_types::CertificateDer::from(
        rustls_pemfile_der(cert_pem).expect("a certificate in the PEM"),
    );
    roots.add(der).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    let tcp = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let name = pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut reply = Vec::new();
    let _ = tls.read_to_end(&mut reply).await;
    let text = String::from_utf8_lossy(&reply);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The DER bytes of the first certificate in a PEM text (base64 between the markers).
fn rustls_pemfile_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    stelgano_proto::check::b64_decode(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_nginx_site_serves_the_cli_over_tls_and_keeps_clients_apart() {
    let Some(binary) = nginx() else {
        if std::env::var("STELGANO_REQUIRE_SYSTEM_DEPS").is_ok_and(|v| v == "1") {
            panic!("the nginx deployment test needs nginx (Debian: nginx-light)");
        }
        eprintln!("\n*** SKIP: nginx deployment test: nginx is not installed ***\n");
        return;
    };
    let relay = TestRelay::start_with(|c| {
        c.trust_forwarded_for = true;
        c.upgrades_per_min = PER_MIN;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let site = site_for(port, relay.relay.local_addr(), &cert, &key);
    let _nginx = Nginx::start(&binary, dir.path(), &site);
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "nginx did not listen");

    // The CLI, trusting the site's certificate, through nginx over wss://.
    let url = format!("wss://localhost:{port}");
    let trust = [("STELGANO_CA_FILE", cert.to_str().unwrap())];
    let alice = Party::new("+44 20 7946 0321", "alice-5150");
    let bob = Party::new("+442079460321", "bob-6262");
    common::exchange(&url, &trust, &alice, &bob, "through nginx").await;

    // Per-IP limits see the client behind the proxy: 127.0.0.2 spends its budget of look-ups,
    // 127.0.0.3 still has all of its own.
    let cert_pem = certified.cert.pem();
    let path = format!("/api/room/{}/exists", "ab".repeat(32));
    for n in 0..PER_MIN {
        assert_eq!(
            get_from([127, 0, 0, 2], port, &cert_pem, &path).await,
            200,
            "look-up {n}"
        );
    }
    assert_eq!(get_from([127, 0, 0, 2], port, &cert_pem, &path).await, 429);
    assert_eq!(get_from([127, 0, 0, 3], port, &cert_pem, &path).await, 200);
    // The metrics path is closed on the public site, as documented.
    assert_eq!(
        get_from([127, 0, 0, 3], port, &cert_pem, "/metrics").await,
        404
    );

    // `access_log off` on the site: nothing of the traffic above was logged.
    let log = std::fs::read_to_string(dir.path().join("logs/access.log")).unwrap_or_default();
    assert!(log.is_empty(), "nginx logged requests: {log}");
    relay.stop().await;
}
