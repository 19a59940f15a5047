//! The `stelgano` binary as users and scripts run it: separate processes against a real relay.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use common::{Party, Run, TestRelay};
use serde_json::Value;
use stelgano_client::crypto::Identity;

const PHONE: &str = "+1 (415) 555-0199";

fn alice() -> Party {
    Party::new(PHONE, "alice-pin-4829")
}

fn bob() -> Party {
    Party::new("+14155550199", "bob-pin-7310")
}

type Secrets = Vec<(&'static str, String)>;

/// The PIN, the key and the relay-facing hashes of a party (the key costs a PBKDF2 run, so
/// each party's are computed once).
fn secrets_of(party: &Party) -> Secrets {
    static CACHE: OnceLock<Mutex<HashMap<(String, String), Secrets>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (party.phone.clone(), party.pin.clone());
    if let Some(s) = cache.lock().unwrap().get(&key) {
        return s.clone();
    }
    let id = Identity::from_parts(&party.phone, &party.pin);
    let secrets = vec![
        ("PIN", party.pin.clone()),
        ("key", id.derive_key().to_hex().to_string()),
        ("room_hash", id.room_hash().to_owned()),
        ("access_hash", id.access_hash().to_owned()),
        ("sender_hash", id.sender_hash().to_owned()),
    ];
    cache.lock().unwrap().insert(key, secrets.clone());
    secrets
}

/// Nothing a network command prints may carry the PIN, the key, or the relay-facing hashes.
fn assert_discreet(party: &Party, run: &Run) {
    let all = format!("{}\n{}", run.stdout, run.stderr);
    for (what, secret) in secrets_of(party) {
        if secret.is_empty() {
            continue;
        }
        assert!(
            !all.contains(&secret),
            "output contains the {what}: {run:?}"
        );
    }
}

/// Runs the binary as `party`; every command but `derive` must stay discreet.
async fn stelgano(party: &Party, url: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let run = party.run(url, args, stdin).await;
    if args.first() != Some(&"derive") {
        assert_discreet(party, &run);
    }
    run
}

/// Creates a channel as Alice and pairs Bob with the printed code.
async fn paired(url: &str) -> String {
    let created = stelgano(&alice(), url, &["create"], None).await;
    created.ok();
    assert_discreet(&alice(), &created);
    let code = created.stdout.trim().to_owned();
    assert_eq!(code.len(), 9, "{created:?}");
    assert_eq!(&code[4..5], "-");
    let joined = stelgano(&bob(), url, &["join", "--code", &code], None).await;
    joined.ok();
    assert_discreet(&bob(), &joined);
    assert!(joined.stderr.contains("Paired"), "{joined:?}");
    code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_exchange_messages_as_the_readme_shows() {
    let relay = TestRelay::start().await;
    let url = relay.url.clone();
    paired(&url).await;

    // Bob waits first; Alice's message wakes his separate process.
    let waiting = {
        let url = url.clone();
        tokio::spawn(async move {
            stelgano(&bob(), &url, &["read", "--wait", "--timeout", "60"], None).await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let sent = stelgano(&alice(), &url, &["send", "hello bob, café 🔒"], None).await;
    sent.ok();
    assert_discreet(&alice(), &sent);
    let got = waiting.await.unwrap();
    got.ok();
    assert_discreet(&bob(), &got);
    assert_eq!(got.stdout, "hello bob, café 🔒\n");

    // Alice cannot send twice in a row.
    let again = stelgano(&alice(), &url, &["send", "are you there?"], None).await;
    assert_eq!(again.code, 7, "{again:?}");
    assert!(again.stderr.contains("not your turn"), "{again:?}");
    assert!(again.stderr.contains("was read"), "{again:?}");

    // Bob replies from stdin; Alice reads it (it is waiting, so --wait returns at once).
    stelgano(&bob(), &url, &["send"], Some("hi alice\n"))
        .await
        .ok();
    let reply = stelgano(&alice(), &url, &["read", "--wait", "--json"], None).await;
    reply.ok();
    let json: Value = serde_json::from_str(&reply.stdout).unwrap();
    assert_eq!(json["text"], "hi alice");

    // Reading again still shows the message Alice has to answer; Bob has nothing new.
    assert_eq!(
        stelgano(&alice(), &url, &["read"], None).await.ok().stdout,
        "hi alice\n"
    );
    let nothing = stelgano(&bob(), &url, &["read"], None).await;
    assert_eq!(nothing.code, 3, "{nothing:?}");
    assert_eq!(nothing.stdout, "");
    assert!(
        nothing.stderr.contains("yours, and it was read"),
        "{nothing:?}"
    );

    let status = stelgano(&bob(), &url, &["status"], None).await;
    let status: Value = serde_json::from_str(&status.ok().stdout).unwrap();
    assert_eq!(status["awaiting_party"], false);
    assert_eq!(status["my_turn"], false);
    assert_eq!(status["message"]["mine"], true);
    assert_eq!(status["message"]["read"], true);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_and_delete_only_while_unread() {
    let relay = TestRelay::start().await;
    let url = relay.url.clone();
    paired(&url).await;
    stelgano(&alice(), &url, &["send", "first draft"], None)
        .await
        .ok();
    stelgano(&alice(), &url, &["edit", "second draft"], None)
        .await
        .ok();
    assert_eq!(
        stelgano(&bob(), &url, &["read", "--no-receipt"], None)
            .await
            .ok()
            .stdout,
        "second draft\n"
    );
    stelgano(&alice(), &url, &["delete"], None).await.ok();
    assert_eq!(stelgano(&bob(), &url, &["read"], None).await.code, 3);
    stelgano(&alice(), &url, &["send", "final"], None)
        .await
        .ok();
    assert_eq!(
        stelgano(&bob(), &url, &["read"], None).await.ok().stdout,
        "final\n"
    );
    let late = stelgano(&alice(), &url, &["edit", "too late"], None).await;
    assert_eq!(late.code, 7, "{late:?}");
    assert!(late.stderr.contains("already read"), "{late:?}");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_shows_attempts_remaining_then_the_lock() {
    let relay = TestRelay::start().await;
    let url = relay.url.clone();
    paired(&url).await;
    let mallory = Party::new(PHONE, "0000");
    let first = stelgano(&mallory, &url, &["read"], None).await;
    assert_eq!(first.code, 5, "{first:?}");
    assert!(
        first.stderr.contains("wrong PIN") && first.stderr.contains("9 attempts remaining"),
        "{first:?}"
    );
    for left in (1..=8).rev() {
        let r = stelgano(&mallory, &url, &["read"], None).await;
        assert_eq!(r.code, 5, "{r:?}");
        let plural = if left == 1 { "" } else { "s" };
        assert!(
            r.stderr
                .contains(&format!("{left} attempt{plural} remaining")),
            "{r:?}"
        );
    }
    let locked = stelgano(&mallory, &url, &["read"], None).await;
    assert_eq!(locked.code, 6, "{locked:?}");
    assert!(locked.stderr.contains("locked"), "{locked:?}");
    assert!(locked.stderr.contains("try again in"), "{locked:?}");

    // Ours (revised December 2026): a lock is absolute. The relay cannot tell a real party from a
    // guesser who guessed right, so the right PIN is refused too until the lock ends.
    let real = stelgano(&alice(), &url, &["status"], None).await;
    assert_eq!(real.code, 6, "{real:?}");
    assert!(real.stderr.contains("locked"), "{real:?}");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_scripts_rely_on() {
    let relay = TestRelay::start().await;
    let url = relay.url.clone();

    // No channel yet: nothing is created by accident.
    let none = stelgano(&alice(), &url, &["send", "hello?"], None).await;
    assert_eq!(none.code, 8, "{none:?}");
    assert_eq!(stelgano(&alice(), &url, &["read"], None).await.code, 8);

    let code = paired(&url).await;
    let again = stelgano(&alice(), &url, &["create"], None).await;
    assert_eq!(again.code, 9, "{again:?}");

    // A used pairing code no longer pairs anyone; a third PIN is a wrong PIN.
    let carol = Party::new(PHONE, "carol-pin");
    let late = stelgano(&carol, &url, &["join", "--code", &code], None).await;
    assert_eq!(late.code, 5, "{late:?}");

    let empty = stelgano(&bob(), &url, &["read"], None).await;
    assert_eq!(empty.code, 3, "{empty:?}");
    let timeout = stelgano(&bob(), &url, &["read", "--wait", "--timeout", "1"], None).await;
    assert_eq!(timeout.code, 4, "{timeout:?}");

    let unconfirmed = stelgano(&alice(), &url, &["burn"], None).await;
    assert_eq!(unconfirmed.code, 2, "{unconfirmed:?}");
    stelgano(&alice(), &url, &["burn", "--yes"], None)
        .await
        .ok();
    let gone = stelgano(&bob(), &url, &["read"], None).await;
    assert_eq!(gone.code, 8, "{gone:?}");

    let empty_pin = Party::new(PHONE, "");
    assert_eq!(stelgano(&empty_pin, &url, &["read"], None).await.code, 2);
    relay.stop().await;

    // Nothing listens there any more.
    let down = stelgano(&alice(), &url, &["read"], None).await;
    assert_eq!(down.code, 11, "{down:?}");
    assert!(down.stderr.contains("cannot reach the relay"), "{down:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeem_extends_the_channel_once_per_token() {
    let relay = TestRelay::start_with(|c| c.extension_tokens = true).await;
    let url = relay.url.clone();
    paired(&url).await;
    let tokens = stelgano_relay::admin::mint(relay.dir.path(), 1, 30)
        .await
        .unwrap();
    let before = stelgano(&alice(), &url, &["status"], None).await;
    before.ok();
    let before: Value = serde_json::from_str(before.stdout.trim()).unwrap();
    let env = [("STELGANO_TOKEN", tokens[0].as_str())];
    let run = alice().run_env(&url, &["redeem"], None, &env).await;
    assert_discreet(&alice(), &run);
    run.ok();
    assert!(run.stderr.contains("Extended"), "{run:?}");
    assert!(!run.stdout.contains(&tokens[0]) && !run.stderr.contains(&tokens[0]));
    let after = stelgano(&bob(), &url, &["status"], None).await;
    after.ok();
    let after: Value = serde_json::from_str(after.stdout.trim()).unwrap();
    assert!(
        after["ttl_expires_at"].as_str() > before["ttl_expires_at"].as_str(),
        "{before} -> {after}"
    );
    // A used token: denied (exit 5).
    let again = bob().run_env(&url, &["redeem"], None, &env).await;
    assert_eq!(again.code, 5, "{again:?}");
    assert!(
        again.stderr.contains("invalid or already used token"),
        "{again:?}"
    );
    relay.stop().await;

    // A relay without tokens says so.
    let relay = TestRelay::start().await;
    paired(&relay.url).await;
    let off = alice()
        .run_env(
            &relay.url,
            &["redeem"],
            None,
            &[("STELGANO_TOKEN", &"a".repeat(64))],
        )
        .await;
    assert!(
        off.code != 0 && off.stderr.contains("extensions are not offered"),
        "{off:?}"
    );
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_pairing_code_replaces_the_old_one() {
    let relay = TestRelay::start().await;
    let url = relay.url.clone();
    let old = stelgano(&alice(), &url, &["create"], None)
        .await
        .ok()
        .stdout
        .trim()
        .to_owned();
    let new = stelgano(&alice(), &url, &["create", "--new-code"], None)
        .await
        .ok()
        .stdout
        .trim()
        .to_owned();
    let stale = stelgano(&bob(), &url, &["join", "--code", &old], None).await;
    assert_eq!(stale.code, 5, "{stale:?}");
    assert!(stale.stderr.contains("incorrect pairing code"), "{stale:?}");
    let no_code = stelgano(&bob(), &url, &["join"], None).await;
    assert_eq!(no_code.code, 5, "{no_code:?}");
    assert!(no_code.stderr.contains("--code"), "{no_code:?}");
    stelgano(&bob(), &url, &["join", "--code", &new.to_lowercase()], None)
        .await
        .ok();
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derive_reproduces_every_vector_and_shows_the_key_only_when_asked() {
    let v: Value = serde_json::from_str(include_str!("vectors.json")).unwrap();
    for vector in v["vectors"].as_array().unwrap() {
        let party = Party::new(
            vector["raw_phone_input"].as_str().unwrap(),
            vector["pin"].as_str().unwrap(),
        );
        let otp = vector["otp_input"].as_str().unwrap();
        // No relay is contacted: the URL points nowhere.
        let plain = stelgano(&party, "ws://127.0.0.1:9", &["derive"], None).await;
        plain.ok();
        assert_eq!(plain.stdout.lines().count(), 1, "{plain:?}");
        let out: Value = serde_json::from_str(&plain.stdout).unwrap();
        for k in [
            "normalised_phone",
            "room_hash",
            "access_hash",
            "sender_hash",
        ] {
            assert_eq!(out[k], vector[k], "{k}");
        }
        assert!(out.get("aes_key_hex").is_none());
        assert!(!plain
            .stdout
            .contains(vector["aes_key_hex"].as_str().unwrap()));

        let full = stelgano(
            &party,
            "ws://127.0.0.1:9",
            &["derive", "--code", otp, "--show-key"],
            None,
        )
        .await;
        let out: Value = serde_json::from_str(&full.ok().stdout).unwrap();
        for k in [
            "normalised_phone",
            "room_hash",
            "access_hash",
            "sender_hash",
            "otp_hash",
            "aes_key_hex",
        ] {
            assert_eq!(out[k], vector[k], "{k}");
        }
        assert_eq!(out["otp_normalised"], vector["otp_normalised"]);
    }
}
