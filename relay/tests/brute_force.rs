//! Brute force against a 4-digit PIN with stock limits (PROTOCOL.md §3 join case 4, revised
//! December 2026): an attacker who knows the steg number pipelines every PIN over several sockets,
//! and the lock must hold against all of them, the right PIN included.

mod common;
mod helpers;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use helpers::*;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::Value;
use stelgano_relay::Config;

const PHONE: &str = "+1 415 555 0199";
/// Four sockets stay well inside the stock 30 upgrades per IP per minute, with the two pairing
/// sockets and the owner's last join.
const SOCKETS: usize = 4;
/// Joins in flight on each socket: the time floor delays each reply, not the next guess, so an
/// attacker keeps many outstanding to multiply the guess rate.
const IN_FLIGHT: usize = 48;
const ATTACK: Duration = Duration::from_secs(15);

#[derive(Default, Debug)]
struct Tally {
    sent: usize,
    unauthorized: usize,
    locked: usize,
    accepted: Vec<String>,
    /// `locked` without a positive `retry_after`, and any other reply: both break the rule.
    odd: Vec<Value>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.sent += other.sent;
        self.unauthorized += other.unauthorized;
        self.locked += other.locked;
        self.accepted.extend(other.accepted);
        self.odd.extend(other.odd);
    }
}

/// One attacker socket: keeps `IN_FLIGHT` guesses outstanding, taking the next PIN from the
/// shared order, until `until`; then collects the replies still due.
async fn attack(
    mut peer: Peer,
    order: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    until: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut by_ref: HashMap<String, String> = HashMap::new();
    loop {
        while by_ref.len() < IN_FLIGHT && Instant::now() < until {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(pin) = order.get(i) else { break };
            let guess = Who::from_pin(PHONE, pin);
            let r = peer.push("join", join_data(&guess)).await;
            by_ref.insert(r, pin.clone());
            tally.sent += 1;
        }
        if by_ref.is_empty() {
            return tally;
        }
        let v = peer.json().await;
        let pin = v["ref"]
            .as_str()
            .and_then(|r| by_ref.remove(r))
            .unwrap_or_else(|| panic!("a reply to no guess: {v}"));
        if v.get("ok").is_some() {
            tally.accepted.push(pin);
            continue;
        }
        match reason(&v) {
            "unauthorized" => tally.unauthorized += 1,
            "locked" if v["error"]["retry_after"].as_u64().is_some_and(|s| s > 0) => {
                tally.locked += 1
            }
            _ => tally.odd.push(v),
        }
    }
}

#[tokio::test]
async fn every_pin_tried_from_four_sockets_finds_nothing_with_stock_limits() {
    let relay = TestRelay::start_with(|c| {
        *c = Config {
            listen: c.listen,
            data_dir: c.data_dir.clone(),
            ..Config::default()
        };
    })
    .await;
    let stock = Config::default();
    let (pin_a, pin_b) = ("4821", "7305");
    let (a, b) = (Who::from_pin(PHONE, pin_a), Who::from_pin(PHONE, pin_b));
    let room = stelgano_client::crypto::Identity::from_parts(PHONE, pin_a)
        .room_hash()
        .to_owned();
    let code = stelgano_client::crypto::new_pairing_code();
    let pair = pair_as(
        &relay,
        &room,
        a,
        b,
        &stelgano_client::crypto::otp_hash(&code),
    )
    .await;

    // Every PIN in random order, the owner's moved into the first 200 so that an attack of a few
    // seconds reaches it: the test means something only if the right PIN is actually sent.
    let mut rng = rand::thread_rng();
    let mut order: Vec<String> = (0..10_000).map(|n| format!("{n:04}")).collect();
    order.shuffle(&mut rng);
    let at = order.iter().position(|p| p == pin_a).unwrap();
    order.swap(at, rng.gen_range(0..200));
    let real_at = order.iter().position(|p| p == pin_a).unwrap();
    let order = Arc::new(order);
    let next = Arc::new(AtomicUsize::new(0));

    let mut peers = Vec::new();
    for _ in 0..SOCKETS {
        peers.push(relay.ws(&room).await);
    }
    let start = Instant::now();
    let until = start + ATTACK;
    let tasks: Vec<_> = peers
        .into_iter()
        .map(|p| tokio::spawn(attack(p, order.clone(), next.clone(), until)))
        .collect();
    let mut tally = Tally::default();
    for t in tasks {
        tally.add(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();

    // The owner, right PIN and right sender hash, after the attack.
    let mut owner = relay.ws(&room).await;
    let owner_reply = owner.join(&pair.a).await;
    let owner_got = if owner_reply.get("ok").is_some() {
        "ok"
    } else {
        reason(&owner_reply)
    };

    println!(
        "brute force: {} guesses sent on {SOCKETS} sockets x {IN_FLIGHT} in flight, right PIN at \
         position {real_at}; {} unauthorized, {} locked, {} accepted, {} other; {elapsed:.1} s, \
         {:.0} guesses/s; the owner's join afterwards: {owner_got}",
        tally.sent,
        tally.unauthorized,
        tally.locked,
        tally.accepted.len(),
        tally.odd.len(),
        tally.sent as f64 / elapsed,
    );
    assert!(
        tally.sent > real_at,
        "the right PIN was never sent ({} guesses)",
        tally.sent
    );
    assert!(
        tally.odd.is_empty(),
        "replies other than unauthorized/locked: {:?}",
        tally.odd
    );
    assert!(
        tally.unauthorized <= stock.max_failures as usize,
        "{} wrong guesses answered unauthorized in the first lock period (max {})",
        tally.unauthorized,
        stock.max_failures
    );
    assert_eq!(
        tally.sent,
        tally.unauthorized + tally.locked + tally.accepted.len(),
        "every guess gets a reply"
    );
    // The revised rule: a lock refuses the right PIN too, from anyone.
    assert!(
        tally.accepted.is_empty(),
        "the attacker got in with PIN(s) {:?}",
        tally.accepted
    );
    assert_error(&owner_reply, "locked");
    assert!(
        owner_reply["error"]["retry_after"]
            .as_u64()
            .is_some_and(|s| s > 0),
        "{owner_reply}"
    );
    relay.shutdown().await;
}
