//! Several relays behind nginx (Debian's package), as docs/SCALING.md deploys them: nginx's
//! consistent hash on the room hash sends each room to one node, which `stelgano_relay::ring`
//! must predict exactly; a killed node's rooms fail closed (503) instead of landing on a node
//! without their record, and come back with it; a fourth node joins through `stelgano-relay
//! nodes` export / import / drop with no seat, lock or TTL lost.
//!
//! Needs nginx: without it the test prints a loud SKIP and passes, unless
//! STELGANO_REQUIRE_SYSTEM_DEPS=1 (CI), where a missing nginx fails it.

mod common;
mod helpers;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use helpers::*;
use serde_json::Value;
use stelgano_relay::ring::Ring;

/// Random room hashes compared between the ring and real nginx routing, per node list.
const SAMPLES: usize = 3000;
/// Rooms created through nginx, paired and (one in three) locked.
const ROOMS: usize = 48;

fn nginx_binary() -> Option<PathBuf> {
    let candidates = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"];
    let found = candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("nginx"))
                    .find(|p| p.is_file())
            })
        })?;
    let ok = Command::new(&found)
        .arg("-v")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some(found)
}

/// `None` (after a loud SKIP) when nginx is missing and CI did not require it.
fn nginx_or_skip() -> Option<PathBuf> {
    if let Some(p) = nginx_binary() {
        return Some(p);
    }
    if std::env::var("STELGANO_REQUIRE_SYSTEM_DEPS").as_deref() == Ok("1") {
        panic!("nginx is required (STELGANO_REQUIRE_SYSTEM_DEPS=1) but not installed");
    }
    eprintln!();
    eprintln!("################################################################");
    eprintln!("SKIP scale_out: nginx is not installed (apt-get install nginx-light)");
    eprintln!("################################################################");
    eprintln!();
    None
}

/// A port that was free a moment ago on `ip` (nginx, and a node not yet started, need one
/// written into a config before they bind).
fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One relay node: the binary on its own loopback address and data directory.
struct Node {
    ip: &'static str,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn name(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    fn addr(&self) -> SocketAddr {
        self.name().parse().unwrap()
    }

    /// Starts the node (port 0 the first time: the port it gets is kept for restarts).
    fn start(&mut self) {
        for _ in 0..20 {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_stelgano-relay"));
            cmd.arg("--listen")
                .arg(format!("{}:{}", self.ip, self.port))
                .arg("--data-dir")
                .arg(&self.dir)
                .args(["--join-floor-ms", "0", "--join-jitter-ms", "0"])
                .args(["--upgrades-per-min", "0", "--room-create-per-min", "0"])
                .args(["--max-sockets-per-ip", "0", "--trust-forwarded-for"]);
            if let Some((child, addr)) = spawn_until_listening(&mut cmd, "open http://") {
                self.port = addr.port();
                self.child = Some(child);
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("relay {} did not start", self.name());
    }

    /// SIGKILL: the node is lost, with no shutdown path.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait: the relay flushes its store and exits, as an operator stops it.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let ok = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                let _ = c.kill();
            }
            let status = c.wait().unwrap();
            assert!(!ok || status.success(), "relay exit: {status}");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// nginx in the foreground with a generated config in its own directory.
struct Nginx {
    child: Child,
    addr: SocketAddr,
}

impl Nginx {
    fn start(bin: &Path, dir: &Path, nodes: &[&Node]) -> Nginx {
        let port = free_port("127.0.0.1");
        let conf = nginx_conf(dir, port, nodes);
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let mut child = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        for _ in 0..200 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return Nginx { child, addr };
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                panic!("nginx exited ({status}): {log}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("nginx did not listen on {addr}");
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The deployment config of docs/SCALING.md, for a temp directory and loopback addresses, plus
/// one test-only header naming the node that answered a room request.
fn nginx_conf(dir: &Path, port: u16, nodes: &[&Node]) -> String {
    let d = dir.display();
    let servers_rooms: String = nodes
        .iter()
        .map(|n| format!("        server {} max_fails=0;\n", n.name()))
        .collect();
    let servers_any: String = nodes
        .iter()
        .map(|n| format!("        server {};\n", n.name()))
        .collect();
    // As root, nginx would hand its worker to `nobody`, who cannot use this directory.
    let is_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let user = if is_root { "user root;\n" } else { "" };
    format!(
        r#"{user}daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    merge_slashes on;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    upstream stelgano_rooms {{
        hash $room consistent;
{servers_rooms}    }}

    upstream stelgano_any {{
{servers_any}    }}

    server {{
        listen 127.0.0.1:{port};

        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $remote_addr;

        location ~ "^/room/(?<room>[0-9a-f]{{64}})/ws$" {{
            proxy_pass http://stelgano_rooms/room/$room/ws;
            proxy_next_upstream off;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 1h;
            error_page 502 504 =503 @room_unavailable;
            add_header X-Stelgano-Node $upstream_addr always;
        }}

        location ~ "^/api/room/(?<room>[0-9a-f]{{64}})/exists$" {{
            proxy_pass http://stelgano_rooms/api/room/$room/exists;
            proxy_next_upstream off;
            error_page 502 504 =503 @room_unavailable;
            add_header X-Stelgano-Node $upstream_addr always;
        }}

        location /room/ {{ return 404; }}
        location /api/room/ {{ return 404; }}

        location @room_unavailable {{
            default_type application/json;
            add_header Retry-After 30 always;
            add_header Cache-Control no-store always;
            return 503 '{{"error":"room_unavailable"}}';
        }}

        location / {{
            proxy_pass http://stelgano_any;
        }}
    }}
}}
"#
    )
}

/// `stelgano-relay nodes …` as an operator runs it: (success, stdout, stderr).
fn nodes_cmd(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    relay_cmd("nodes", data_dir, args)
}

/// The `key<TAB>value` lines of a `nodes` command's output.
fn field<'a>(out: &'a str, key: &str) -> Vec<&'a str> {
    out.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('\t'))
        .collect()
}

/// `exists` through nginx: (status, the node that answered, whether the room exists).
async fn routed_exists(nginx: SocketAddr, room: &str) -> (u16, Option<String>, Option<bool>) {
    let (status, head, body) = http_get(nginx, &format!("/api/room/{room}/exists"), "").await;
    let node = header(&head, "x-stelgano-node").map(str::to_owned);
    let exists = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["exists"].as_bool());
    (status, node, exists)
}

/// For each sample, the node nginx routed it to; asserts it is the ring's choice every time.
async fn check_ring_against_nginx(
    nginx: SocketAddr,
    ring: &Ring,
    samples: &[String],
) -> Vec<String> {
    let mut routed = Vec::with_capacity(samples.len());
    let mut mismatches = 0;
    for room in samples {
        let (status, node, _) = routed_exists(nginx, room).await;
        assert_eq!(status, 200, "exists through nginx answered {status}");
        let node = node.expect("nginx names the node");
        if node != ring.owner_of_key(room) {
            mismatches += 1;
        }
        routed.push(node);
    }
    let mut shares: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &routed {
        *shares.entry(n.as_str()).or_default() += 1;
    }
    eprintln!(
        "ring vs nginx, {} nodes: {} samples, {mismatches} mismatches, per node {shares:?}",
        ring.servers().len(),
        samples.len()
    );
    assert_eq!(mismatches, 0, "the ring disagrees with nginx");
    routed
}

/// One room created through nginx: both seats taken; one in three locked by a stranger's
/// wrong PINs. `ttl` is the TTL the creator's join reported.
struct Room {
    hash: String,
    a: Who,
    b: Who,
    locked: bool,
    ttl: Value,
}

async fn create_room(nginx: SocketAddr, lock: bool) -> Room {
    let hash = random_hex();
    let (a, b, otp) = (Who::new(), Who::new(), random_hex());
    let mut pa = Peer::connect(nginx, &hash).await;
    let r = ok(&pa.join_otp(&a, &otp).await);
    let ttl = r["ttl_expires_at"].clone();
    assert!(ttl.is_string() || ttl.is_number(), "{r}");
    let mut pb = Peer::connect(nginx, &hash).await;
    ok(&pb.join_otp(&b, &otp).await);
    drop(pa);
    drop(pb);
    if lock {
        let mut x = Peer::connect(nginx, &hash).await;
        let mut locked = false;
        for _ in 0..20 {
            let v = x.join(&Who::new()).await;
            match reason(&v) {
                "unauthorized" => {}
                "locked" => {
                    locked = true;
                    break;
                }
                _ => panic!("guess: {v}"),
            }
        }
        assert!(locked, "the room did not lock");
    }
    Room {
        hash,
        a,
        b,
        locked: lock,
        ttl,
    }
}

/// The room's record is where it should be: its owner answers and its seats, lock and TTL hold.
async fn check_room_intact(nginx: SocketAddr, room: &Room) {
    // A stranger never gets a seat: both are taken, or the room is locked.
    let mut x = Peer::connect(nginx, &room.hash).await;
    let v = x.join(&Who::new()).await;
    assert!(
        reason(&v) == "unauthorized" || reason(&v) == "locked",
        "a stranger's join was not refused: {v}"
    );
    let mut pa = Peer::connect(nginx, &room.hash).await;
    let v = pa.join(&room.a).await;
    if room.locked {
        assert_error(&v, "locked");
    } else {
        let r = ok(&v);
        assert_eq!(r["ttl_expires_at"], room.ttl, "the TTL changed");
        let mut pb = Peer::connect(nginx, &room.hash).await;
        ok(&pb.join(&room.b).await);
    }
}

/// Which nodes hold the room's record, asked directly (not through nginx).
async fn holders(nodes: &[&Node], room: &str) -> Vec<String> {
    let mut out = Vec::new();
    for n in nodes {
        if exists(n.addr(), room).await {
            out.push(n.name());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_live_on_one_node_fail_closed_and_move_with_their_records() {
    let Some(nginx_bin) = nginx_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let node = |ip: &'static str, name: &str| Node {
        ip,
        port: 0,
        dir: tmp.path().join(name),
        child: None,
    };
    let mut a = node("127.0.0.2", "a");
    let mut b = node("127.0.0.3", "b");
    let mut c = node("127.0.0.4", "c");
    a.start();
    b.start();
    c.start();
    let ring3 = Ring::new(&[a.name(), b.name(), c.name()]).unwrap();
    let nginx_dir = tmp.path().join("nginx");
    std::fs::create_dir_all(&nginx_dir).unwrap();
    let mut nginx = Nginx::start(&nginx_bin, &nginx_dir, &[&a, &b, &c]);

    // 1. nginx routes exactly as the ring says.
    let samples: Vec<String> = (0..SAMPLES).map(|_| random_hex()).collect();
    let routed3 = check_ring_against_nginx(nginx.addr, &ring3, &samples).await;

    // Other paths go anywhere; a non-canonical room path is refused by nginx, not routed.
    let (status, _, body) = http_get(nginx.addr, "/healthz", "").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let upper = samples[0].to_uppercase();
    let (status, _, _) = http_get(nginx.addr, &format!("/api/room/{upper}/exists"), "").await;
    assert_eq!(status, 404);

    // 2. Rooms driven through nginx live on exactly one node: the ring's.
    let mut rooms = Vec::new();
    for i in 0..ROOMS {
        rooms.push(create_room(nginx.addr, i % 3 == 0).await);
    }
    for room in &rooms {
        let held = holders(&[&a, &b, &c], &room.hash).await;
        assert_eq!(held, vec![ring3.owner_of_key(&room.hash).to_owned()]);
    }

    // 3. Node b is killed: its rooms fail closed, the others are untouched.
    let b_name = b.name();
    b.kill();
    let mut unavailable = 0;
    for (room, routed) in samples.iter().zip(&routed3) {
        let (status, node, _) = routed_exists(nginx.addr, room).await;
        if *routed == b_name {
            assert_eq!(status, 503, "a room of the dead node was answered");
            unavailable += 1;
        } else {
            assert_eq!(status, 200);
            assert_eq!(
                node.as_deref(),
                Some(routed.as_str()),
                "a room changed node"
            );
        }
    }
    let share = unavailable as f64 / samples.len() as f64;
    eprintln!(
        "one of three nodes killed: {unavailable}/{} rooms unavailable ({share:.3})",
        samples.len()
    );
    assert!((0.2..0.47).contains(&share), "{share}");

    let (status, head, body) = http_get(
        nginx.addr,
        &format!(
            "/api/room/{}/exists",
            rooms
                .iter()
                .find(|r| ring3.owner_of_key(&r.hash) == b_name)
                .map_or(samples[0].as_str(), |r| r.hash.as_str())
        ),
        "",
    )
    .await;
    if status == 503 {
        assert_eq!(body, r#"{"error":"room_unavailable"}"#);
        assert_eq!(header(&head, "retry-after"), Some("30"));
    }
    let mut bypassed = 0;
    let mut on_b = 0;
    for room in &rooms {
        if ring3.owner_of_key(&room.hash) == b_name {
            on_b += 1;
            // A stranger who knows the room cannot reach it, so cannot take it anywhere else.
            let (status, _) = upgrade(nginx.addr, &format!("/room/{}/ws", room.hash)).await;
            if status != 503 {
                bypassed += 1;
            }
            assert!(holders(&[&a, &c], &room.hash).await.is_empty());
        } else {
            check_room_intact(nginx.addr, room).await;
        }
    }
    eprintln!("rooms of the killed node: {on_b}, reachable elsewhere: {bypassed}");
    assert_eq!(bypassed, 0);

    // 4. It comes back with its records.
    b.start();
    assert_eq!(b.name(), b_name);
    for room in &rooms {
        if ring3.owner_of_key(&room.hash) == b_name {
            check_room_intact(nginx.addr, room).await;
        }
    }

    // 5. A fourth node joins by the documented procedure.
    let mut d = node("127.0.0.5", "d");
    d.port = free_port(d.ip);
    let ring4 = Ring::new(&[a.name(), b.name(), c.name(), d.name()]).unwrap();
    let old_list = ring3.servers().join(",");
    let new_list = ring4.servers().join(",");
    let bundles = tmp.path().join("bundles");
    std::fs::create_dir_all(&bundles).unwrap();
    a.stop();
    b.stop();
    c.stop();
    let mut planned = 0;
    for n in [&a, &b, &c] {
        let (ok_, out, err) = nodes_cmd(
            &n.dir,
            &[
                "plan",
                "--self",
                &n.name(),
                "--nodes",
                &old_list,
                "--new-nodes",
                &new_list,
            ],
        );
        assert!(ok_, "{err}");
        assert_eq!(field(&out, "unplaced"), vec!["0"], "{out}");
        assert_eq!(field(&out, "misplaced"), vec!["0"], "{out}");
        for line in field(&out, "move") {
            let (to, count) = line.split_once('\t').unwrap();
            assert_eq!(to, d.name(), "only the new node gains rooms");
            planned += count.parse::<usize>().unwrap();
        }
    }
    let expected: Vec<&Room> = rooms
        .iter()
        .filter(|r| ring3.owner_of_key(&r.hash) != ring4.owner_of_key(&r.hash))
        .collect();
    assert_eq!(planned, expected.len());
    eprintln!(
        "a 4th node joins: {planned}/{} stored rooms move ({:.3})",
        rooms.len(),
        planned as f64 / rooms.len() as f64
    );

    let mut receipts = Vec::new();
    for n in [&a, &b, &c] {
        let out_dir = bundles.join(n.ip);
        std::fs::create_dir_all(&out_dir).unwrap();
        let (ok_, out, err) = Command::new(env!("CARGO_BIN_EXE_stelgano-relay"))
            .args([
                "nodes",
                "export",
                "--self",
                &n.name(),
                "--new-nodes",
                &new_list,
            ])
            .arg("--out")
            .arg(&out_dir)
            .arg("--data-dir")
            .arg(&n.dir)
            .output()
            .map(|o| {
                (
                    o.status.success(),
                    String::from_utf8(o.stdout).unwrap(),
                    String::from_utf8(o.stderr).unwrap(),
                )
            })
            .unwrap();
        assert!(ok_, "{err}");
        for bundle in field(&out, "bundle") {
            let import = || {
                nodes_cmd(
                    &d.dir,
                    &[
                        "import",
                        "--self",
                        &d.name(),
                        "--new-nodes",
                        &new_list,
                        "--bundle",
                        bundle,
                    ],
                )
            };
            let (ok_, out, err) = import();
            assert!(ok_, "{err}");
            let receipt = field(&out, "receipt")[0].to_owned();
            // An import is idempotent; a wrong receipt drops nothing.
            let (ok_, out2, err) = import();
            assert!(ok_, "{err}");
            assert_eq!(field(&out2, "imported"), vec!["0"]);
            let (ok_, _, err) = nodes_cmd(
                &n.dir,
                &["drop", "--bundle", bundle, "--receipt", &"0".repeat(64)],
            );
            assert!(!ok_ && err.contains("receipt"), "{err}");
            receipts.push((n.dir.clone(), bundle.to_owned(), receipt));
        }
    }
    for (dir, bundle, receipt) in &receipts {
        let (ok_, out, err) = nodes_cmd(dir, &["drop", "--bundle", bundle, "--receipt", receipt]);
        assert!(ok_, "{err}");
        assert_eq!(field(&out, "absent"), vec!["0"], "{out}");
    }
    drop(nginx);
    nginx = Nginx::start(&nginx_bin, &nginx_dir, &[&a, &b, &c, &d]);
    a.start();
    b.start();
    c.start();
    d.start();

    // 6. Every room is on exactly its new owner, with its seats, lock and TTL.
    let all = [&a, &b, &c, &d];
    let moved: BTreeSet<&str> = expected.iter().map(|r| r.hash.as_str()).collect();
    for room in &rooms {
        let held = holders(&all, &room.hash).await;
        assert_eq!(held, vec![ring4.owner_of_key(&room.hash).to_owned()]);
        check_room_intact(nginx.addr, room).await;
    }
    eprintln!("moved rooms checked on their new node: {}", moved.len());

    // 7. nginx routes the 4-node ring as predicted, and only the new node gained keys.
    let routed4 = check_ring_against_nginx(nginx.addr, &ring4, &samples).await;
    let changed = routed3
        .iter()
        .zip(&routed4)
        .filter(|(before, after)| before != after)
        .inspect(|(_, after)| assert_eq!(**after, d.name()))
        .count();
    eprintln!(
        "a 4th node joins: {changed}/{} sampled room hashes change node ({:.3})",
        samples.len(),
        changed as f64 / samples.len() as f64
    );
    assert!((0.15..0.35).contains(&(changed as f64 / samples.len() as f64)));
    drop(nginx);
}

/// The move tooling's refusals, without nginx: it will not open a running node's store, will
/// not export while a record has no ring position (it could not be placed), never drops such a
/// record, and a record from before ring positions were kept is placed when its room is next
/// opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplaced_records_are_refused_then_placed_by_the_next_join() {
    let tmp = tempfile::tempdir().unwrap();
    let mut n = Node {
        ip: "127.0.0.1",
        port: 0,
        dir: tmp.path().join("n"),
        child: None,
    };
    n.start();
    let me = n.name();
    let list = format!("{me},127.0.0.9:1");
    let room = random_hex();
    let who = Who::new();
    let mut p = Peer::connect(n.addr(), &room).await;
    ok(&p.join(&who).await);
    drop(p);

    // The running relay holds the store.
    let (ok_, _, err) = nodes_cmd(&n.dir, &["plan", "--self", &me, "--new-nodes", &list]);
    assert!(!ok_ && err.contains("stop this node's relay"), "{err}");
    n.stop();

    // Make the record look like one stored before ring positions were kept.
    {
        let store = stelgano_store::Store::open(&n.dir, &Default::default()).unwrap();
        let hash = stelgano_proto::check::hex64(&room).unwrap();
        let loc = stelgano_store::RoomKeys::derive(&hash).locator();
        store.forget_ring_position(&loc).unwrap();
        store.flush().await.unwrap();
    }
    let (ok_, out, err) = nodes_cmd(&n.dir, &["plan", "--self", &me, "--new-nodes", &list]);
    assert!(ok_, "{err}");
    assert_eq!(field(&out, "records"), vec!["1"], "{out}");
    assert_eq!(field(&out, "unplaced"), vec!["1"], "{out}");

    let bundles = tmp.path().join("bundles");
    std::fs::create_dir_all(&bundles).unwrap();
    let export = |keep: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stelgano-relay"));
        cmd.args(["nodes", "export", "--self", &me, "--new-nodes", &list])
            .arg("--out")
            .arg(&bundles)
            .arg("--data-dir")
            .arg(&n.dir);
        if keep {
            cmd.arg("--keep-unplaced");
        }
        let o = cmd.output().unwrap();
        (o.status.success(), String::from_utf8(o.stderr).unwrap())
    };
    let (ok_, err) = export(false);
    assert!(!ok_ && err.contains("no ring position"), "{err}");
    assert_eq!(std::fs::read_dir(&bundles).unwrap().count(), 0);
    // Kept on purpose: exported nowhere, and still here.
    let (ok_, err) = export(true);
    assert!(ok_, "{err}");
    assert_eq!(std::fs::read_dir(&bundles).unwrap().count(), 0);

    // The next join places it.
    n.start();
    let mut p = Peer::connect(n.addr(), &room).await;
    ok(&p.join(&who).await);
    drop(p);
    n.stop();
    let (ok_, out, err) = nodes_cmd(&n.dir, &["plan", "--self", &me, "--new-nodes", &list]);
    assert!(ok_, "{err}");
    assert_eq!(field(&out, "unplaced"), vec!["0"], "{out}");
    assert_eq!(field(&out, "records"), vec!["1"], "{out}");
}
