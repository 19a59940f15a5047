//! The closed-loop, turn-based exchange of one room, as a pure state machine.
//!
//! The socket driver asks [`Exchange::next`] what to do (send as a party, read a party's socket,
//! or stop), performs it, and reports back with [`Exchange::sent`] and [`Exchange::seen`]. Keeping
//! the rules here, apart from the sockets, makes them testable frame by frame.
//!
//! Against the relay, A's `send_message` makes the relay broadcast `new_message` to both parties
//! and then reply `ok` to A; the message counts as delivered when B reads it, and then it is B's
//! turn. A's own copy and its `ok` wait in A's socket buffer and are read on A's next read.
//! Against the echo server each party waits for its own frame to come back, and turns alternate.
//! Against a fanout pair the server writes every frame to the partner and back to the sender, like
//! the relay without the protocol: the partner's copy is the delivery, the sender's own copy waits
//! in its socket buffer like the relay's `ok`.

use std::time::{Duration, Instant};

use crate::inbound::Seen;

/// One of the two parties of a room (two sockets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    A,
    B,
}

impl Party {
    pub fn other(self) -> Party {
        match self {
            Party::A => Party::B,
            Party::B => Party::A,
        }
    }

    pub fn index(self) -> usize {
        match self {
            Party::A => 0,
            Party::B => 1,
        }
    }
}

/// What the sockets are connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Relay,
    Echo,
    Fanout,
}

impl Mode {
    /// The target's name in reports.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Relay => "relay",
            Mode::Echo => "echo",
            Mode::Fanout => "fanout",
        }
    }
}

/// The driver's next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Send(Party),
    Read(Party),
    Done,
}

/// What a frame meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The in-flight message reached the other side after this long.
    Delivered(Duration),
    /// Expected bookkeeping (own copy, an `ok`, a `party_paired`, ...).
    Ignored,
    /// The relay refused a send; the room stops (its turn order is now unknown).
    Rejected(String),
    /// A frame the protocol does not allow here; the room stops.
    Unexpected(&'static str),
}

#[derive(Debug)]
pub struct Exchange {
    mode: Mode,
    in_flight: Option<(Party, Instant)>,
    next_sender: Party,
    acks_owed: [u32; 2],
    stopping: bool,
    failed: bool,
}

impl Exchange {
    pub fn new(mode: Mode) -> Exchange {
        Exchange {
            mode,
            in_flight: None,
            next_sender: Party::A,
            acks_owed: [0; 2],
            stopping: false,
            failed: false,
        }
    }

    /// The socket that will receive the in-flight message.
    fn receiver_of(&self, sender: Party) -> Party {
        match self.mode {
            Mode::Relay | Mode::Fanout => sender.other(),
            Mode::Echo => sender,
        }
    }

    pub fn next(&self) -> Next {
        if self.failed {
            return Next::Done;
        }
        if let Some((sender, _)) = self.in_flight {
            return Next::Read(self.receiver_of(sender));
        }
        if !self.stopping {
            return Next::Send(self.next_sender);
        }
        // Stopping: collect the replies still owed so a late error is still counted.
        for p in [Party::A, Party::B] {
            if self.acks_owed[p.index()] > 0 {
                return Next::Read(p);
            }
        }
        Next::Done
    }

    /// No new sends; the message in flight (if any) is still awaited.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    pub fn sent(&mut self, by: Party, at: Instant) {
        self.in_flight = Some((by, at));
        if matches!(self.mode, Mode::Relay | Mode::Fanout) {
            self.acks_owed[by.index()] += 1;
        }
    }

    /// A frame arrived on `on`'s socket at `at`.
    pub fn seen(&mut self, on: Party, what: Seen, at: Instant) -> Outcome {
        let outcome = match (self.mode, what) {
            (Mode::Relay, Seen::NewMessage { own: true }) => Outcome::Ignored,
            (Mode::Relay, Seen::NewMessage { own: false }) => match self.in_flight {
                Some((sender, t0)) if sender == on.other() => {
                    self.in_flight = None;
                    self.next_sender = on;
                    Outcome::Delivered(at.saturating_duration_since(t0))
                }
                _ => Outcome::Unexpected("unexpected_message"),
            },
            (Mode::Relay, Seen::Ok) => {
                let owed = &mut self.acks_owed[on.index()];
                if *owed == 0 {
                    Outcome::Unexpected("unexpected_reply")
                } else {
                    *owed -= 1;
                    Outcome::Ignored
                }
            }
            (Mode::Relay, Seen::Error(reason)) => Outcome::Rejected(reason),
            (Mode::Relay, Seen::Other) => Outcome::Ignored,
            (Mode::Echo, Seen::Echo) => match self.in_flight {
                Some((sender, t0)) if sender == on => {
                    self.in_flight = None;
                    self.next_sender = on.other();
                    Outcome::Delivered(at.saturating_duration_since(t0))
                }
                _ => Outcome::Unexpected("unexpected_echo"),
            },
            // The sender's own copy of an earlier send comes before anything the partner sends
            // after it, so a copy still owed is always the frame at the head of the socket.
            (Mode::Fanout, Seen::Echo) => {
                let owed = &mut self.acks_owed[on.index()];
                if *owed > 0 {
                    *owed -= 1;
                    Outcome::Ignored
                } else {
                    match self.in_flight {
                        Some((sender, t0)) if sender == on.other() => {
                            self.in_flight = None;
                            self.next_sender = on;
                            Outcome::Delivered(at.saturating_duration_since(t0))
                        }
                        _ => Outcome::Unexpected("unexpected_echo"),
                    }
                }
            }
            (_, Seen::Unreadable) => Outcome::Unexpected("unreadable_frame"),
            _ => Outcome::Unexpected("unexpected_frame"),
        };
        if matches!(outcome, Outcome::Rejected(_) | Outcome::Unexpected(_)) {
            self.failed = true;
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn relay_turns_alternate_and_replies_are_collected() {
        let t = Instant::now();
        let mut x = Exchange::new(Mode::Relay);
        assert_eq!(x.next(), Next::Send(Party::A));
        x.sent(Party::A, t);
        assert_eq!(x.next(), Next::Read(Party::B));
        // B sees A's message: delivered, B's turn.
        let out = x.seen(Party::B, Seen::NewMessage { own: false }, t + ms(2));
        assert_eq!(out, Outcome::Delivered(ms(2)));
        assert_eq!(x.next(), Next::Send(Party::B));
        x.sent(Party::B, t + ms(3));
        assert_eq!(x.next(), Next::Read(Party::A));
        // A first drains its own copy and its ok, then gets B's message.
        assert_eq!(
            x.seen(Party::A, Seen::NewMessage { own: true }, t),
            Outcome::Ignored
        );
        assert_eq!(x.seen(Party::A, Seen::Ok, t), Outcome::Ignored);
        assert_eq!(x.next(), Next::Read(Party::A));
        let out = x.seen(Party::A, Seen::NewMessage { own: false }, t + ms(4));
        assert_eq!(out, Outcome::Delivered(ms(1)));
        assert_eq!(x.next(), Next::Send(Party::A));
        // Stop: B still owes its ok, so B is read once more, then done.
        x.stop();
        assert_eq!(x.next(), Next::Read(Party::B));
        assert_eq!(
            x.seen(Party::B, Seen::NewMessage { own: true }, t),
            Outcome::Ignored
        );
        assert_eq!(x.seen(Party::B, Seen::Ok, t), Outcome::Ignored);
        assert_eq!(x.next(), Next::Done);
    }

    #[test]
    fn stop_waits_for_the_message_in_flight() {
        let t = Instant::now();
        let mut x = Exchange::new(Mode::Relay);
        x.sent(Party::A, t);
        x.stop();
        assert_eq!(x.next(), Next::Read(Party::B));
        x.seen(Party::B, Seen::NewMessage { own: false }, t);
        assert_eq!(x.next(), Next::Read(Party::A));
        x.seen(Party::A, Seen::Ok, t);
        assert_eq!(x.next(), Next::Done);
    }

    #[test]
    fn a_refused_send_ends_the_room() {
        let t = Instant::now();
        let mut x = Exchange::new(Mode::Relay);
        x.sent(Party::A, t);
        assert_eq!(
            x.seen(Party::B, Seen::Error("rate_limited".into()), t),
            Outcome::Rejected("rate_limited".into())
        );
        assert_eq!(x.next(), Next::Done);
    }

    #[test]
    fn out_of_turn_frames_are_faults() {
        let t = Instant::now();
        let mut x = Exchange::new(Mode::Relay);
        assert_eq!(
            x.seen(Party::A, Seen::NewMessage { own: false }, t),
            Outcome::Unexpected("unexpected_message")
        );
        let mut x = Exchange::new(Mode::Relay);
        assert_eq!(
            x.seen(Party::B, Seen::Ok, t),
            Outcome::Unexpected("unexpected_reply")
        );
        let mut x = Exchange::new(Mode::Relay);
        x.sent(Party::A, t);
        assert_eq!(
            x.seen(Party::B, Seen::Unreadable, t),
            Outcome::Unexpected("unreadable_frame")
        );
        assert_eq!(x.next(), Next::Done);
    }

    #[test]
    fn echo_waits_on_the_senders_own_socket_and_alternates() {
        let t = Instant::now();
        let mut x = Exchange::new(Mode::Echo);
        assert_eq!(x.next(), Next::Send(Party::A));
        x.sent(Party::A, t);
        assert_eq!(x.next(), Next::Read(Party::A));
        assert_eq!(
            x.seen(Party::A, Seen::Echo, t + ms(1)),
            Outcome::Delivered(ms(1))
        );
        assert_eq!(x.next(), Next::Send(Party::B));
        x.sent(Party::B, t);
        x.stop();
        assert_eq!(x.next(), Next::Read(Party::B));
        x.seen(Party::B, Seen::Echo, t);
        // No replies are owed to an echo client.
        assert_eq!(x.next(), Next::Done);
    }

    #[test]
    fn fanout_delivers_to_the_partner_and_drains_own_copies() {
        let t = Instant::now();
        let mut x = Exchange::new(Mode::Fanout);
        assert_eq!(x.next(), Next::Send(Party::A));
        x.sent(Party::A, t);
        assert_eq!(x.next(), Next::Read(Party::B));
        assert_eq!(
            x.seen(Party::B, Seen::Echo, t + ms(2)),
            Outcome::Delivered(ms(2))
        );
        assert_eq!(x.next(), Next::Send(Party::B));
        x.sent(Party::B, t + ms(3));
        // A's own copy of its first send is read before B's message.
        assert_eq!(x.next(), Next::Read(Party::A));
        assert_eq!(x.seen(Party::A, Seen::Echo, t), Outcome::Ignored);
        assert_eq!(
            x.seen(Party::A, Seen::Echo, t + ms(5)),
            Outcome::Delivered(ms(2))
        );
        // Stopping collects B's own copy, then ends.
        x.stop();
        assert_eq!(x.next(), Next::Read(Party::B));
        assert_eq!(x.seen(Party::B, Seen::Echo, t), Outcome::Ignored);
        assert_eq!(x.next(), Next::Done);
        // A frame nobody is owed or waiting for is a fault.
        let mut x = Exchange::new(Mode::Fanout);
        assert_eq!(
            x.seen(Party::A, Seen::Echo, t),
            Outcome::Unexpected("unexpected_echo")
        );
    }
}
