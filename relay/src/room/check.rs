//! The room's invariants, checked after every step of any session against a [`RoomCore`]: shared
//! by the property test in the normal suite and the cargo-fuzz `room_core` target.
//!
//! Checked: a locked room lets no join through, the right PIN included; at most one message, and
//! a turn is never taken twice; counters only go down by their documented resets (a seat's own
//! successful join, a lock, a reset of the pairing code); seats are never lost or swapped; a write
//! the store refused changes nothing; nothing panics.

use std::time::Duration;

use crate::room::core::{Effect, JoinInput, Op, Otp, Policy, RoomCore};
use crate::room::guard::{self, LockPolicy};
use stelgano_proto::Reason;
use stelgano_store::Tier;

const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;

/// One thing that can happen to a room.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    /// Seat owner 0 or 1 joins with the right PIN.
    Owner(u8),
    /// A stranger (one of 256) tries a PIN.
    Stranger(u8),
    /// The second party claims its seat with the right pairing code (0), a wrong one (1) or one
    /// that is not even 64-hex (2).
    Claim(u8),
    /// A seat sends, reads, edits or deletes.
    Send(u8),
    Read(u8),
    Edit(u8),
    Delete(u8),
    /// The creator sets a new pairing code.
    ResetPairing,
    /// Someone burns the room.
    Burn,
    /// Seat 0 redeems an extension token (that the token store accepts).
    Extend,
    /// Time passes: one of a few spans, from a minute to a few days.
    Advance(u8),
    /// The store refuses the next write.
    FailNextWrite,
}

impl Step {
    /// Two bytes a step, for the fuzzer: a kind and a parameter.
    pub(crate) fn from_bytes(data: &[u8]) -> Vec<Step> {
        data.chunks_exact(2)
            .map(|c| {
                let p = c[1];
                match c[0] % 13 {
                    0 => Step::Owner(p % 2),
                    1 => Step::Stranger(p),
                    2 => Step::Claim(p % 3),
                    3 => Step::Send(p % 2),
                    4 => Step::Read(p % 2),
                    5 => Step::Edit(p % 2),
                    6 => Step::Delete(p % 2),
                    7 => Step::ResetPairing,
                    8 => Step::Burn,
                    9 | 10 => Step::Advance(p),
                    11 => Step::Extend,
                    _ => Step::FailNextWrite,
                }
            })
            .collect()
    }
}

/// The policy the checks run under: the stock numbers.
pub(crate) fn policy() -> Policy {
    Policy {
        lock: LockPolicy {
            max_failures: 10,
            first_lock: Duration::from_secs(30 * 60),
            max_lock: Duration::from_secs(24 * 3600),
            decay: Duration::from_secs(24 * 3600),
        },
        free_ttl_ms: 7 * 24 * HOUR,
        extended_ttl_ms: 365 * 24 * HOUR,
    }
}

/// A party's access and sender hashes.
#[derive(Debug, Clone, Copy)]
struct Who {
    access: [u8; 32],
    sender: [u8; 32],
}

const OWNERS: [Who; 2] = [
    Who {
        access: [1; 32],
        sender: [2; 32],
    },
    Who {
        access: [3; 32],
        sender: [4; 32],
    },
];
const OTP: [u8; 32] = [9; 32];

fn stranger(n: u8) -> Who {
    let mut access = [0xa0; 32];
    access[0] = n;
    let mut sender = [0xb0; 32];
    sender[0] = n;
    Who { access, sender }
}

macro_rules! ensure {
    ($cond:expr, $($what:tt)+) => {
        if !$cond {
            return Err(format!($($what)+));
        }
    };
}

/// Runs `steps` against a fresh room (created with a pairing code), checking every invariant
/// after each; the first one broken is returned.
pub(crate) fn run(steps: &[Step]) -> Result<(), String> {
    let policy = policy();
    let mut core = RoomCore::default();
    let mut now = 1_000_000u64;
    let mut fail_next = false;
    for (i, &step) in steps.iter().enumerate() {
        let before = core.clone();
        let at = |what: String| format!("step {i} {step:?}: {what}");
        match step {
            Step::Advance(p) => {
                now += [MIN, 31 * MIN, 3 * HOUR, 25 * HOUR][usize::from(p % 4)];
            }
            Step::FailNextWrite => fail_next = true,
            Step::Burn => core.burn(),
            Step::Owner(_) | Step::Stranger(_) | Step::Claim(_) => {
                let (who, otp) = match step {
                    Step::Owner(s) => (OWNERS[usize::from(s % 2)], Otp::Hash(OTP)),
                    Step::Stranger(n) => (stranger(n), Otp::Absent),
                    Step::Claim(c) => (
                        OWNERS[1],
                        match c % 3 {
                            0 => Otp::Hash(OTP),
                            1 => Otp::Hash([0x55; 32]),
                            _ => Otp::Malformed,
                        },
                    ),
                    _ => unreachable!("matched above"),
                };
                let input = JoinInput {
                    sender: who.sender,
                    access: who.access,
                    otp,
                    extension: None,
                    now_ms: now,
                };
                let d = core.decide_join(&input, &policy, &mut || true, &mut || [7; 16]);
                let old = before.record.as_ref();
                let locked = old.is_some_and(|r| guard::locked_for(&r.guesses, now).is_some());
                if locked {
                    ensure!(
                        matches!(d.reply, Err(ref e) if e.reason() == Some(Reason::Locked))
                            && d.seat.is_none(),
                        "{}",
                        at(format!("a locked room let a join through: {:?}", d.reply))
                    );
                }
                ensure!(
                    d.reply.is_ok() == d.seat.is_some(),
                    "{}",
                    at("a seat without ok, or ok without a seat".into())
                );
                if let (Some(old), Some(w)) = (old, d.write.as_ref()) {
                    let new = &w.record;
                    ensure!(
                        new.guesses.failures < policy.lock.max_failures,
                        "{}",
                        at(format!("failures at {}", new.guesses.failures))
                    );
                    if new.guesses.failures < old.guesses.failures {
                        ensure!(
                            d.seat.is_some() || new.guesses.locked_until_ms > now,
                            "{}",
                            at("the guess count went down without a join or a lock".into())
                        );
                    }
                    ensure!(
                        new.guesses.level >= guard::level_at(&old.guesses, now, &policy.lock),
                        "{}",
                        at("the escalation level went down".into())
                    );
                    ensure!(
                        new.guesses.locked_until_ms >= old.guesses.locked_until_ms,
                        "{}",
                        at("a lock got shorter".into())
                    );
                    ensure!(
                        new.room_id == old.room_id
                            && new.ttl_expires_at_ms == old.ttl_expires_at_ms,
                        "{}",
                        at("the room's identity or expiry changed on a join".into())
                    );
                    for s in 0..2 {
                        match (&old.seats[s], &new.seats[s]) {
                            (Some(o), Some(n)) => {
                                ensure!(
                                    o.access_hash == n.access_hash
                                        && o.sender_hash == n.sender_hash,
                                    "{}",
                                    at(format!("seat {s} changed hands"))
                                );
                                if n.failed_since_join < o.failed_since_join {
                                    ensure!(
                                        d.seat == Some(s) && n.failed_since_join == 0,
                                        "{}",
                                        at(format!("seat {s}'s attempts went down"))
                                    );
                                }
                            }
                            (Some(_), None) => return Err(at(format!("seat {s} was lost"))),
                            _ => {}
                        }
                    }
                    if locked {
                        for s in 0..2 {
                            if let (Some(o), Some(n)) = (&old.seats[s], &new.seats[s]) {
                                ensure!(
                                    n.failed_since_join > o.failed_since_join
                                        || o.failed_since_join == u32::MAX,
                                    "{}",
                                    at("a refused attempt was not reported".into())
                                );
                            }
                        }
                    }
                }
                if let (Step::Claim(c), Some(old)) = (step, old) {
                    let pairing_open = old.seats[1].is_none()
                        && old.seats[0]
                            .as_ref()
                            .is_some_and(|s| s.access_hash != who.access)
                        && guard::locked_for(&old.pairing, now).is_none();
                    if c % 3 != 0 && old.pairing_hash.is_some() && pairing_open && !locked {
                        ensure!(
                            d.seat.is_none()
                                && d.write.as_ref().is_some_and(|w| w.record.pairing.failures
                                    > old.pairing.failures
                                    || w.record.pairing.locked_until_ms > now),
                            "{}",
                            at("a wrong or malformed pairing code was not counted".into())
                        );
                    }
                }
                if let Some(w) = d.write {
                    if !std::mem::take(&mut fail_next) {
                        core.commit(w.record);
                    }
                }
            }
            Step::Extend => {
                if core.record.as_ref().is_none_or(|r| r.seats[0].is_none()) {
                    continue;
                }
                let out = core.op(
                    0,
                    0,
                    Op::Redeem {
                        token: Some([1; 32]),
                    },
                    now,
                    &policy,
                );
                ensure!(
                    core.record == before.record,
                    "{}",
                    at("the core changed its record before the token was used".into())
                );
                let Effect::Redeem { write, .. } = out.effect else {
                    return Err(at("a redeem without a token to use".into()));
                };
                let (old, new) = (before.record.as_ref(), &write.record);
                ensure!(
                    old.is_some_and(|o| new.ttl_expires_at_ms > o.ttl_expires_at_ms
                        && new.ttl_expires_at_ms % HOUR == 0
                        && new.seats == o.seats
                        && new.guesses == o.guesses)
                        && new.tier == Tier::Paid,
                    "{}",
                    at("an extension that did not move the expiry to a whole hour, or touched more".into())
                );
                if !std::mem::take(&mut fail_next) {
                    core.commit(write.record);
                }
            }
            Step::ResetPairing => {
                if core.record.as_ref().is_none_or(|r| r.seats[0].is_none()) {
                    continue;
                }
                let out = core.op(0, 0, Op::ResetPairing { otp: Some(OTP) }, now, &policy);
                ensure!(
                    core.record == before.record,
                    "{}",
                    at("the core changed its record before the write".into())
                );
                if let Effect::Write(w) = out.effect {
                    ensure!(
                        w.durable && w.record.seats[1].is_none(),
                        "{}",
                        at("a pairing reset that is not durable, or with both seats".into())
                    );
                    if !std::mem::take(&mut fail_next) {
                        core.commit(w.record);
                    }
                }
            }
            Step::Send(s) | Step::Read(s) | Step::Edit(s) | Step::Delete(s) => {
                let seat = usize::from(s % 2);
                let Some(me) = core
                    .record
                    .as_ref()
                    .and_then(|r| r.seats[seat].as_ref())
                    .map(|s| s.sender_hash)
                else {
                    continue;
                };
                let id = core
                    .message
                    .as_ref()
                    .map(|m| m.id.to_string())
                    .unwrap_or_default();
                let mine = core.message.as_ref().is_some_and(|m| m.sender == me);
                let op = match step {
                    Step::Send(_) => Op::Send {
                        ciphertext: "QUJD".into(),
                        iv: "AAAAAAAAAAAAAAAA".into(),
                    },
                    Step::Read(_) => Op::ReadReceipt { message_id: id },
                    Step::Edit(_) => Op::Edit {
                        message_id: id,
                        ciphertext: "REVG".into(),
                        iv: "BBBBBBBBBBBBBBBB".into(),
                    },
                    _ => Op::Delete { message_id: id },
                };
                let sending = matches!(op, Op::Send { .. });
                let out = core.op(seat, seat as u64, op, now, &policy);
                ensure!(
                    matches!(out.effect, Effect::None) && core.record == before.record,
                    "{}",
                    at("a message event touched the record".into())
                );
                if sending {
                    let refused = matches!(out.reply, Some(Err(ref e)) if e.reason() == Some(Reason::NotYourTurn));
                    ensure!(mine == refused, "{}", at("the turn rule was broken".into()));
                    if !mine {
                        ensure!(
                            core.message.as_ref().map(|m| m.sender) == Some(me),
                            "{}",
                            at("the new message is not the sender's".into())
                        );
                    }
                }
                if let (Some(b), Some(m)) = (before.message.as_ref(), core.message.as_ref()) {
                    if b.id == m.id && b.read_at_ms.is_some() {
                        ensure!(
                            m.read_at_ms == b.read_at_ms && m.ciphertext == b.ciphertext,
                            "{}",
                            at("a read message changed".into())
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u8..2).prop_map(Step::Owner),
            8 => any::<u8>().prop_map(Step::Stranger),
            2 => (0u8..3).prop_map(Step::Claim),
            3 => (0u8..2).prop_map(Step::Send),
            2 => (0u8..2).prop_map(Step::Read),
            1 => (0u8..2).prop_map(Step::Edit),
            1 => (0u8..2).prop_map(Step::Delete),
            1 => Just(Step::ResetPairing),
            1 => Just(Step::Burn),
            1 => Just(Step::Extend),
            3 => any::<u8>().prop_map(Step::Advance),
            1 => Just(Step::FailNextWrite),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn room_invariants_hold_over_any_session(steps in proptest::collection::vec(step(), 1..200)) {
            // The room starts with its creator's join.
            let mut all = vec![Step::Owner(0)];
            all.extend(steps);
            if let Err(broken) = run(&all) {
                prop_assert!(false, "{}", broken);
            }
        }
    }

    #[test]
    fn a_lock_refuses_the_owner_in_a_scripted_session() {
        let mut steps = vec![Step::Owner(0), Step::Claim(0)];
        steps.extend((0..10).map(Step::Stranger));
        steps.push(Step::Owner(1));
        steps.push(Step::Owner(0));
        run(&steps).unwrap();
    }

    #[test]
    fn bytes_decode_to_steps() {
        assert_eq!(Step::from_bytes(&[0, 1, 1, 200, 7]).len(), 2);
    }
}
