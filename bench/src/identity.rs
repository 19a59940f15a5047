//! Random room identities and the frames each party sends, encoded once before a run.
//!
//! The relay never decrypts, so the ciphertext is random bytes of the requested size; what matters
//! is that every field passes the relay's validation (64 lowercase hex hashes, standard base64, a
//! 12-byte IV). These values live only in the bench's memory and are never printed.

use rand::RngCore;
use sha2::{Digest, Sha256};
use stelgano_proto::check::{b64_encode, to_hex64};
use stelgano_proto::client::{ClientEvent, JoinData, SendData};
use stelgano_proto::limits::IV_BYTES;

/// One side of a room.
#[derive(Clone)]
pub struct PartyKeys {
    pub access_hash: String,
    pub sender_hash: String,
}

/// A room the bench creates and pairs.
#[derive(Clone)]
pub struct RoomIdentity {
    pub room_hash: String,
    pub parties: [PartyKeys; 2],
    /// sha256 hex of the pairing code; both joins carry it.
    pub otp_hash: String,
}

// Hand-written so a stray `{:?}` can never print a hash.
impl std::fmt::Debug for RoomIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoomIdentity(..)")
    }
}

impl std::fmt::Debug for PartyKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PartyKeys(..)")
    }
}

fn random_hex64(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    to_hex64(&b)
}

impl RoomIdentity {
    pub fn random(rng: &mut impl RngCore) -> RoomIdentity {
        let code = format!("{:06}", rng.next_u32() % 1_000_000);
        let otp: [u8; 32] = Sha256::digest(code.as_bytes()).into();
        RoomIdentity {
            room_hash: random_hex64(rng),
            parties: [
                PartyKeys {
                    access_hash: random_hex64(rng),
                    sender_hash: random_hex64(rng),
                },
                PartyKeys {
                    access_hash: random_hex64(rng),
                    sender_hash: random_hex64(rng),
                },
            ],
            otp_hash: to_hex64(&otp),
        }
    }

    /// `/room/{room_hash}/ws`.
    pub fn path(&self) -> String {
        format!("/room/{}/ws", self.room_hash)
    }

    /// The `join` frame of party `index` (0 creates the room, 1 claims the second seat).
    pub fn join_frame(&self, index: usize, reference: &str) -> Vec<u8> {
        let p = &self.parties[index];
        ClientEvent::Join(JoinData {
            sender_hash: Some(p.sender_hash.clone()),
            access_hash: Some(p.access_hash.clone()),
            otp_hash: Some(self.otp_hash.clone()),
            ..JoinData::default()
        })
        .encode(reference)
        .into_bytes()
    }
}

/// A message body: `payload_bytes` random bytes as base64 and a random 12-byte IV.
#[derive(Clone)]
pub struct Message {
    pub ciphertext: String,
    pub iv: String,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Message({} b64 chars)", self.ciphertext.len())
    }
}

impl Message {
    pub fn random(rng: &mut impl RngCore, payload_bytes: usize) -> Message {
        let mut body = vec![0u8; payload_bytes];
        rng.fill_bytes(&mut body);
        let mut iv = [0u8; IV_BYTES];
        rng.fill_bytes(&mut iv);
        Message {
            ciphertext: b64_encode(&body),
            iv: b64_encode(&iv),
        }
    }

    /// The `send_message` frame. The ref is fixed: replies are matched by order, not by ref.
    pub fn send_frame(&self, reference: &str) -> Vec<u8> {
        ClientEvent::SendMessage(SendData {
            ciphertext: Some(self.ciphertext.clone()),
            iv: Some(self.iv.clone()),
        })
        .encode(reference)
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stelgano_proto::check::{b64_decode, is_hex64};
    use stelgano_proto::{ClientEvent, Inbound};

    #[test]
    fn identities_pass_the_relays_validation() {
        let mut rng = rand::thread_rng();
        let id = RoomIdentity::random(&mut rng);
        assert!(is_hex64(&id.room_hash));
        assert!(is_hex64(&id.otp_hash));
        for p in &id.parties {
            assert!(is_hex64(&p.access_hash));
            assert!(is_hex64(&p.sender_hash));
        }
        assert_ne!(id.parties[0].sender_hash, id.parties[1].sender_hash);
        let frame = String::from_utf8(id.join_frame(1, "j")).unwrap();
        match Inbound::parse(&frame).unwrap().event {
            ClientEvent::Join(d) => {
                assert_eq!(d.access_hash.as_deref(), Some(&*id.parties[1].access_hash));
                assert_eq!(d.otp_hash.as_deref(), Some(&*id.otp_hash));
            }
            other => panic!("{other:?}"),
        }
        assert!(!format!("{id:?}").contains(&id.room_hash));
    }

    #[test]
    fn messages_have_the_requested_size_and_a_12_byte_iv() {
        let mut rng = rand::thread_rng();
        let m = Message::random(&mut rng, 200);
        assert_eq!(b64_decode(&m.ciphertext).unwrap().len(), 200);
        assert_eq!(b64_decode(&m.iv).unwrap().len(), 12);
        let frame = String::from_utf8(m.send_frame("1")).unwrap();
        match Inbound::parse(&frame).unwrap().event {
            ClientEvent::SendMessage(d) => assert_eq!(d.ciphertext.unwrap(), m.ciphertext),
            other => panic!("{other:?}"),
        }
    }
}
