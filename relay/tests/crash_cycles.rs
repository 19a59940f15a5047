//! Crash cycles: the real relay binary under mixed load is killed with SIGKILL at a random
//! moment, restarted on the same data directory, and every effect it acknowledged before the kill
//! must still be there (PROTOCOL.md §9: a restart keeps rooms, seats, locks and counters).
//!
//! `STELGANO_CRASH_CYCLES` sets the number of cycles (default 20); `relay/scripts/crash-run.sh`
//! runs many in release mode.

mod common;
mod helpers;

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use helpers::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Wrong PINs (and pairing codes) before a lock: low, so that locks happen within a cycle.
const MAX_FAILURES: u32 = 3;
/// Load tasks, each owning its rooms (one operation in flight per room, so at most one effect
/// per room is unknown at the kill).
const WORKERS: usize = 8;
/// Rooms tracked at once; every one is checked after every restart.
const ROOM_CAP: usize = 48;

/// What the load does, counted when acknowledged and, in verification, when lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Create,
    CreateWithCode,
    Pair,
    WrongPin,
    Lock,
    WrongCode,
    PairingLock,
    Rejoin,
    Burn,
}

/// One room as the load knows it: only what a reply confirmed, plus the one operation whose
/// reply never came.
struct Room {
    hash: String,
    a: Who,
    b: Who,
    otp: Option<String>,
    created: bool,
    paired: bool,
    burned: bool,
    locked: bool,
    pairing_locked: bool,
    /// Acknowledged wrong PINs since each seat's last successful join: the least its next
    /// `failed_attempts` may report.
    unseen: [u32; 2],
    /// Wrong PINs and codes sent, answered or not: from `MAX_FAILURES` on, a lock is possible.
    pin_tries: u32,
    code_tries: u32,
    pending: Option<Kind>,
    /// The creator's joined socket (to burn with); none after a restart until a rejoin.
    sa: Option<Peer>,
    /// A stranger's socket for wrong guesses.
    sg: Option<Peer>,
}

impl Room {
    fn new(with_code: bool) -> Room {
        Room {
            hash: random_hex(),
            a: Who::new(),
            b: Who::new(),
            otp: with_code.then(random_hex),
            created: false,
            paired: false,
            burned: false,
            locked: false,
            pairing_locked: false,
            unseen: [0, 0],
            pin_tries: 0,
            code_tries: 0,
            pending: None,
            sa: None,
            sg: None,
        }
    }

    /// Whether a lock may refuse this room's joins. Wrong PINs and codes are summed because a
    /// relay may count both against the room; an owner's join that resets a count is ignored:
    /// the bound only has to be high enough.
    fn maybe_locked(&self) -> bool {
        self.locked || self.pairing_locked || self.pin_tries + self.code_tries >= MAX_FAILURES
    }

    fn usable(&self) -> bool {
        self.created && !self.burned && self.pending.is_none()
    }
}

#[derive(Default)]
struct Totals {
    acked: BTreeMap<Kind, u64>,
    verified: BTreeMap<Kind, u64>,
    lost: BTreeMap<Kind, u64>,
    unacked_at_kill: u64,
    /// What went wrong, for the failure message (never a hash).
    notes: Vec<String>,
}

impl Totals {
    fn ack(&mut self, k: Kind) {
        *self.acked.entry(k).or_default() += 1;
    }

    fn verified(&mut self, k: Kind) {
        *self.verified.entry(k).or_default() += 1;
    }

    fn lost(&mut self, k: Kind, why: String) {
        *self.lost.entry(k).or_default() += 1;
        self.notes.push(format!("lost {k:?}: {why}"));
    }

    fn unexpected(&mut self, what: &str, v: &Value) {
        self.notes.push(format!("unexpected reply to {what}: {v}"));
    }

    fn add(&mut self, other: Totals) {
        for (k, n) in other.acked {
            *self.acked.entry(k).or_default() += n;
        }
        for (k, n) in other.verified {
            *self.verified.entry(k).or_default() += n;
        }
        for (k, n) in other.lost {
            *self.lost.entry(k).or_default() += n;
        }
        self.unacked_at_kill += other.unacked_at_kill;
        self.notes.extend(other.notes);
    }
}

/// The relay binary as a child process; killed with SIGKILL when dropped, so a failing test
/// leaves no relay behind.
struct ChildRelay {
    child: Child,
    addr: SocketAddr,
}

impl ChildRelay {
    /// Starts the binary on a free loopback port and waits until it listens. Retries a few
    /// times: a start can fail while the killed process's store lock is being released.
    fn start(data_dir: &Path) -> ChildRelay {
        let mut last = String::new();
        for _ in 0..20 {
            match ChildRelay::try_start(data_dir) {
                Ok(relay) => return relay,
                Err(log) => last = log,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the relay binary did not start; its last log lines:\n{last}");
    }

    /// Its last log lines are the error when it does not come up.
    fn try_start(data_dir: &Path) -> Result<ChildRelay, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stelgano-relay"))
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--join-floor-ms", "0", "--join-jitter-ms", "0"])
            .args(["--upgrades-per-min", "0", "--room-create-per-min", "0"])
            .args(["--max-failures", &MAX_FAILURES.to_string()])
            // Locks must outlast any run of this test, however many cycles.
            .args(["--lock-minutes", "1440", "--log", "info"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot spawn the relay binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel();
        let keep = tail.clone();
        // Drains the log for the child's whole life, so a full pipe never blocks it.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("open http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("");
                    let _ = tx.send(addr.parse::<SocketAddr>().ok());
                }
                let mut t = keep.lock().unwrap();
                t.push_back(line);
                if t.len() > 20 {
                    t.pop_front();
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(20)).ok().flatten();
        let log = || Vec::from(tail.lock().unwrap().clone()).join("\n");
        match addr {
            Some(addr) => Ok(ChildRelay { child, addr }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(log())
            }
        }
    }

    /// `kill -9`: no shutdown path runs, nothing is flushed on the way out.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL to the relay");
        self.child.wait().expect("reaping the killed relay");
    }
}

impl Drop for ChildRelay {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn failed_attempts(ok: &Value) -> u32 {
    ok["failed_attempts"].as_u64().unwrap_or(0) as u32
}

/// Drives one room operation. `false` when its reply did not come (the relay is gone): the
/// worker stops there.
async fn step(addr: SocketAddr, rooms: &mut Vec<Room>, rng: &mut StdRng, t: &mut Totals) -> bool {
    let usable: Vec<usize> = (0..rooms.len()).filter(|&i| rooms[i].usable()).collect();
    if usable.len() < ROOM_CAP / WORKERS && (usable.is_empty() || rng.gen_bool(0.3)) {
        let with_code = rng.gen_bool(0.5);
        let mut room = Room::new(with_code);
        let Some(mut peer) = Peer::try_connect(addr, &room.hash).await else {
            return false;
        };
        room.pending = Some(Kind::Create);
        let reply = peer.try_join(&room.a, room.otp.as_deref()).await;
        let acked = reply.is_some();
        match reply {
            Some(v) if v.get("ok").is_some() => {
                room.created = true;
                room.pending = None;
                room.sa = Some(peer);
                t.ack(if with_code {
                    Kind::CreateWithCode
                } else {
                    Kind::Create
                });
            }
            Some(v) => {
                // Refused: nothing to track (the note fails the cycle).
                t.unexpected("create", &v);
                return true;
            }
            None => {}
        }
        rooms.push(room);
        return acked;
    }

    let Some(&i) = usable.get(rng.gen_range(0..usable.len().max(1))) else {
        return true;
    };
    let r = &mut rooms[i];
    let mut choices: Vec<(Kind, u32)> = vec![(Kind::Rejoin, 1)];
    if !r.paired && !r.pairing_locked && r.code_tries < MAX_FAILURES {
        choices.push((Kind::Pair, 3));
    }
    if !r.paired && r.otp.is_some() && !r.pairing_locked {
        choices.push((Kind::WrongCode, 2));
    }
    if r.paired && !r.locked {
        choices.push((Kind::WrongPin, 4));
    }
    if r.sa.is_some() {
        choices.push((Kind::Burn, 1));
    }
    let total: u32 = choices.iter().map(|c| c.1).sum();
    let mut roll = rng.gen_range(0..total);
    let kind = choices
        .iter()
        .find(|(_, w)| {
            if roll < *w {
                true
            } else {
                roll -= w;
                false
            }
        })
        .map_or(Kind::Rejoin, |c| c.0);

    match kind {
        Kind::Pair => {
            let Some(mut peer) = Peer::try_connect(addr, &r.hash).await else {
                return false;
            };
            r.pending = Some(Kind::Pair);
            let Some(v) = peer.try_join(&r.b, r.otp.as_deref()).await else {
                return false;
            };
            r.pending = None;
            if v.get("ok").is_some() && v["ok"]["awaiting_party"] == false {
                r.paired = true;
                r.unseen[1] = 0;
                t.ack(Kind::Pair);
            } else {
                t.unexpected("pair", &v);
            }
        }
        Kind::WrongCode | Kind::WrongPin => {
            if r.sg.is_none() {
                r.sg = Peer::try_connect(addr, &r.hash).await;
            }
            let Some(peer) = r.sg.as_mut() else {
                return false;
            };
            let code = (kind == Kind::WrongCode).then(random_hex);
            r.pending = Some(kind);
            if kind == Kind::WrongCode {
                r.code_tries += 1;
            } else {
                r.pin_tries += 1;
            }
            let Some(v) = peer.try_join(&Who::new(), code.as_deref()).await else {
                return false;
            };
            r.pending = None;
            match (kind, reason(&v)) {
                (Kind::WrongCode, "otp_invalid") => t.ack(Kind::WrongCode),
                (Kind::WrongCode, "locked") => {
                    r.pairing_locked = true;
                    t.ack(Kind::PairingLock);
                }
                (Kind::WrongPin, "unauthorized") => {
                    r.unseen[0] += 1;
                    r.unseen[1] += 1;
                    t.ack(Kind::WrongPin);
                }
                (Kind::WrongPin, "locked") => {
                    r.locked = true;
                    t.ack(Kind::Lock);
                }
                _ => t.unexpected("a wrong guess", &v),
            }
        }
        Kind::Burn => {
            let Some(peer) = r.sa.as_mut() else {
                return true;
            };
            r.pending = Some(Kind::Burn);
            let Some(v) = peer.try_call("expire_room", json!({})).await else {
                return false;
            };
            r.pending = None;
            if v.get("ok").is_some() {
                r.burned = true;
                r.sa = None;
                r.sg = None;
                t.ack(Kind::Burn);
            } else {
                t.unexpected("expire_room", &v);
            }
        }
        _ => {
            let seat = if r.paired && rng.gen_bool(0.5) { 1 } else { 0 };
            let who = if seat == 0 { r.a.clone() } else { r.b.clone() };
            let Some(mut peer) = Peer::try_connect(addr, &r.hash).await else {
                return false;
            };
            // Whether or not the reply comes, the seat's count may now be reset.
            let due = std::mem::take(&mut r.unseen[seat]);
            r.pending = Some(Kind::Rejoin);
            let Some(v) = peer.try_join(&who, None).await else {
                return false;
            };
            r.pending = None;
            if v.get("ok").is_some() {
                t.ack(Kind::Rejoin);
                let n = failed_attempts(&v["ok"]);
                if n < due {
                    t.lost(
                        Kind::WrongPin,
                        format!("a live rejoin reported {n} failed attempts, {due} acknowledged"),
                    );
                }
                if seat == 0 && r.sa.is_none() {
                    r.sa = Some(peer);
                }
            } else if reason(&v) == "locked" && r.maybe_locked() {
                // The revised rule: a lock refuses the owners too.
                if r.paired {
                    r.locked = true;
                } else {
                    r.pairing_locked = true;
                }
            } else {
                t.unexpected("an owner's rejoin", &v);
            }
        }
    }
    true
}

/// Runs operations on its own rooms until told to stop or until a reply does not come.
async fn worker(
    addr: SocketAddr,
    mut rooms: Vec<Room>,
    stop: Arc<AtomicBool>,
) -> (Vec<Room>, Totals) {
    let mut rng = StdRng::from_entropy();
    let mut t = Totals::default();
    while !stop.load(Ordering::Relaxed) {
        if !step(addr, &mut rooms, &mut rng, &mut t).await {
            break;
        }
    }
    for r in &mut rooms {
        r.sa = None;
        r.sg = None;
    }
    (rooms, t)
}

async fn join_fresh(addr: SocketAddr, room: &str, who: &Who, otp: Option<&str>) -> Value {
    let mut peer = Peer::try_connect(addr, room)
        .await
        .expect("the restarted relay refuses connections");
    peer.try_join(who, otp)
        .await
        .expect("the restarted relay does not answer a join")
}

/// Checks one room against what was acknowledged before the kill. Returns the room if it stays
/// tracked (checked again after the next kill).
async fn verify(addr: SocketAddr, mut r: Room, t: &mut Totals) -> Option<Room> {
    if r.pending.is_some() {
        t.unacked_at_kill += 1;
    }
    if r.pending == Some(Kind::Create) {
        // Never acknowledged: whatever the store holds for it is no promise.
        return None;
    }
    let there = exists(addr, &r.hash).await;
    if r.pending == Some(Kind::Burn) && !there {
        return None;
    }
    if r.burned {
        if there {
            t.lost(Kind::Burn, "a burned room exists again".into());
        } else {
            t.verified(Kind::Burn);
        }
        return None;
    }
    if !there {
        t.lost(Kind::Create, "a created room is gone".into());
        return None;
    }
    t.verified(Kind::Create);

    if r.pending == Some(Kind::Pair) {
        // The claim may or may not have landed; claiming again settles it either way.
        let v = join_fresh(addr, &r.hash, &r.b, r.otp.as_deref()).await;
        if v.get("ok").is_some() {
            r.paired = true;
            r.unseen[1] = 0;
        } else {
            t.unexpected("a repeated claim", &v);
            return None;
        }
    }
    r.pending = None;

    if r.locked || r.pairing_locked {
        let kind = if r.locked {
            Kind::Lock
        } else {
            Kind::PairingLock
        };
        let code = r.pairing_locked.then(random_hex);
        let v = join_fresh(addr, &r.hash, &Who::new(), code.as_deref()).await;
        if reason(&v) == "locked" && v["error"]["retry_after"].as_u64().is_some_and(|s| s > 0) {
            t.verified(kind);
        } else {
            t.lost(kind, format!("a stranger's join on a locked room got {v}"));
        }
        // A lock outlasts the test and freezes the room: checked once across a kill, retired.
        return None;
    }

    let v = join_fresh(addr, &r.hash, &r.a, None).await;
    if let Some(ok) = v.get("ok") {
        let n = failed_attempts(ok);
        if n < r.unseen[0] {
            t.lost(
                Kind::WrongPin,
                format!(
                    "the creator's join reported {n} failed attempts, {} acknowledged",
                    r.unseen[0]
                ),
            );
        } else if r.unseen[0] > 0 {
            t.verified(Kind::WrongPin);
        }
        r.unseen[0] = 0;
        if r.paired && ok["awaiting_party"] != false {
            t.lost(Kind::Pair, format!("the creator's join says {ok}"));
        }
    } else if reason(&v) == "locked" && r.maybe_locked() {
        // Locked by a guess whose reply never came (the revised rule refuses owners too).
        return None;
    } else {
        t.lost(Kind::Create, format!("the creator's join got {v}"));
        return None;
    }

    if r.paired {
        let v = join_fresh(addr, &r.hash, &r.b, None).await;
        if let Some(ok) = v.get("ok") {
            let n = failed_attempts(ok);
            if n < r.unseen[1] {
                t.lost(
                    Kind::WrongPin,
                    format!(
                        "the second seat's join reported {n} failed attempts, {} acknowledged",
                        r.unseen[1]
                    ),
                );
            }
            r.unseen[1] = 0;
            t.verified(Kind::Pair);
        } else if !(reason(&v) == "locked" && r.maybe_locked()) {
            t.lost(Kind::Pair, format!("the second seat's join got {v}"));
            return None;
        }
        // A stranger must meet a full room: a wrong PIN, never a seat or a pairing prompt.
        r.pin_tries += 1;
        let v = join_fresh(addr, &r.hash, &Who::new(), None).await;
        match reason(&v) {
            "unauthorized" => {
                r.unseen[0] += 1;
                r.unseen[1] += 1;
            }
            "locked" => r.locked = true,
            _ => t.lost(
                Kind::Pair,
                format!("a stranger's join on a paired room got {v}"),
            ),
        }
    }
    Some(r)
}

fn cycles() -> usize {
    std::env::var("STELGANO_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

fn line(m: &BTreeMap<Kind, u64>) -> String {
    let parts: Vec<String> = m.iter().map(|(k, n)| format!("{k:?} {n}")).collect();
    let total: u64 = m.values().sum();
    format!("{total} ({})", parts.join(", "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_effects_survive_kill_9_under_mixed_load() {
    let cycles = cycles();
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut rooms: Vec<Room> = Vec::new();
    let mut totals = Totals::default();
    let mut rng = StdRng::from_entropy();
    let mut relay = ChildRelay::start(dir.path());

    for cycle in 1..=cycles {
        let addr = relay.addr;
        let stop = Arc::new(AtomicBool::new(false));
        let mut shares: Vec<Vec<Room>> = (0..WORKERS).map(|_| Vec::new()).collect();
        for (i, r) in rooms.drain(..).enumerate() {
            shares[i % WORKERS].push(r);
        }
        let tasks: Vec<_> = shares
            .into_iter()
            .map(|share| tokio::spawn(worker(addr, share, stop.clone())))
            .collect();

        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..=700))).await;
        relay.kill();
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            let (share, t) = task.await.unwrap();
            rooms.extend(share);
            totals.add(t);
        }

        relay = ChildRelay::start(dir.path());
        let mut kept = Vec::new();
        for r in rooms.drain(..) {
            if let Some(r) = verify(relay.addr, r, &mut totals).await {
                kept.push(r);
            }
        }
        rooms = kept;
        let lost: u64 = totals.lost.values().sum();
        assert!(
            lost == 0 && totals.notes.is_empty(),
            "cycle {cycle}:\n{}",
            totals.notes.join("\n")
        );
    }
    relay.kill();

    println!(
        "crash cycles: {cycles} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("crash cycles: acknowledged {}", line(&totals.acked));
    println!(
        "crash cycles: checked after a kill {}",
        line(&totals.verified)
    );
    println!(
        "crash cycles: operations in flight at a kill (unacknowledged) {}",
        totals.unacked_at_kill
    );
    println!("crash cycles: lost {}", line(&totals.lost));
    assert!(totals.lost.is_empty(), "{}", totals.notes.join("\n"));
}
