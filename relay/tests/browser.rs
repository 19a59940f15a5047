//! End-to-end test of the browser client in real headless Chromium: two isolated browser profiles
//! create, pair and use a channel through an in-process relay, with the std-1 vectors and the Rust
//! client's derivations checked inside the page. Screenshots of every screen go to
//! `target/browser-artifacts/` (or `STELGANO_ARTIFACTS`).
//!
//! Needs Debian's `chromium` and `chromium-driver`; without them the test prints a loud SKIP and
//! passes, unless `STELGANO_REQUIRE_SYSTEM_DEPS=1`, when it fails.
#![allow(clippy::unwrap_used)]

mod browser_support;

use std::time::Duration;

use browser_support::{artifacts_dir, find_tools, Browser, Driver, TestResult};
use serde_json::{json, Value};
use stelgano_client::crypto::{Identity, RoomKey};

/// Runs inside the page: every vector of vectors.json through the page's own modules (hashes on
/// the main thread, the key from the PBKDF2 worker), returning what the browser computed.
const VECTOR_SCRIPT: &str = r#"
const [v, done] = arguments;
(async () => {
  const c = await import('/crypto.js');
  const kdf = await import('/kdf.js');
  const fixedIv = c.fromBase64(v.fixed_encryption_inputs.iv_b64);
  const out = { vectors: [], phones: [], otps: [], tokens: [], salted: [] };
  for (const x of v.vectors) {
    const h = await c.channelHashes(x.raw_phone_input, x.pin);
    const key = await kdf.deriveKeyInWorker(x.raw_phone_input, h.roomHash);
    const fixed = await c.encryptText(key, x.fixed_iv_encryption.plaintext_utf8, fixedIv);
    const dv = x.decrypt_vector;
    out.vectors.push({
      normalised_phone: c.normalisePhone(x.raw_phone_input),
      room_hash: h.roomHash,
      access_hash: h.accessHash,
      sender_hash: h.senderHash,
      otp_normalised: c.normaliseOtp(x.otp_input),
      otp_hash: await c.otpHash(x.otp_input),
      key_extractable: key.extractable,
      fixed_ciphertext: fixed.ciphertext,
      fixed_iv: fixed.iv,
      decrypted: await c.decryptText(key, dv.ciphertext_with_tag_b64, dv.iv_b64),
    });
  }
  for (const p of v.normalise_phone_only) out.phones.push(c.normalisePhone(p.input));
  for (const o of v.normalise_otp_only) {
    const n = c.normaliseOtp(o.input);
    out.otps.push({ normalised: n, hash: await c.sha256Hex(n), shown: c.formatOtp(n) });
  }
  for (const t of v.extension_token_hash) out.tokens.push(await c.sha256Hex(t.extension_secret));
  for (const k of v.key_with_arbitrary_salt_prefix) {
    const key = await c.deriveChannelKey(k.normalised_phone, k.room_id_argument, true);
    const raw = new Uint8Array(await crypto.subtle.exportKey('raw', key));
    out.salted.push(Array.from(raw, (b) => b.toString(16).padStart(2, '0')).join(''));
  }
  return out;
})().then(done, (e) => done({ error: String(e && e.stack || e) }));
"#;

/// Runs inside the page: hashes for inputs chosen by the test, a message sealed by the page for
/// the Rust client, and the opening of one the Rust client sealed.
const CROSS_SCRIPT: &str = r#"
const [phone, pin, text, rustSealed, done] = arguments;
(async () => {
  const c = await import('/crypto.js');
  const kdf = await import('/kdf.js');
  const h = await c.channelHashes(phone, pin);
  const key = await kdf.deriveKeyInWorker(phone, h.roomHash);
  const sealed = await c.encryptText(key, text);
  const opened = await c.decryptText(key, rustSealed.ciphertext, rustSealed.iv);
  return { room: h.roomHash, access: h.accessHash, sender: h.senderHash, sealed, opened };
})().then(done, (e) => done({ error: String(e && e.stack || e) }));
"#;

/// Written to the console once to prove the capture works; every other entry is a failure.
const CONSOLE_PROBE: &str = "stelgano-console-probe";

/// The client crate's vendored copy of the spec's vectors (client/tests/vectors.rs keeps it in
/// step with the spec): a test reads only files inside the repository.
fn vectors() -> Value {
    serde_json::from_str(include_str!("../../client/tests/vectors.json")).unwrap()
}

async fn check_vectors(page: &Browser) -> TestResult {
    let v = vectors();
    let got = page
        .client
        .execute_async(VECTOR_SCRIPT, vec![v.clone()])
        .await?;
    assert!(got.get("error").is_none(), "vector script failed: {got}");
    for (want, have) in v["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .zip(got["vectors"].as_array().unwrap())
    {
        let label = want["label"].as_str().unwrap();
        for field in [
            "normalised_phone",
            "room_hash",
            "access_hash",
            "sender_hash",
            "otp_normalised",
            "otp_hash",
        ] {
            assert_eq!(have[field], want[field], "{label}: {field}");
        }
        assert_eq!(
            have["key_extractable"],
            json!(false),
            "{label}: the page's key must be non-extractable"
        );
        assert_eq!(
            have["fixed_ciphertext"], want["fixed_iv_encryption"]["ciphertext_with_tag_b64"],
            "{label}: ciphertext"
        );
        assert_eq!(
            have["fixed_iv"], want["fixed_iv_encryption"]["iv_b64"],
            "{label}: iv"
        );
        assert_eq!(
            have["decrypted"], want["decrypt_vector"]["plaintext_utf8"],
            "{label}: decrypt"
        );
    }
    assert_eq!(
        got["vectors"].as_array().unwrap().len(),
        v["vectors"].as_array().unwrap().len()
    );
    for (want, have) in v["normalise_phone_only"]
        .as_array()
        .unwrap()
        .iter()
        .zip(got["phones"].as_array().unwrap())
    {
        assert_eq!(have, &want["normalised"], "normalise {}", want["input"]);
    }
    for (want, have) in v["normalise_otp_only"]
        .as_array()
        .unwrap()
        .iter()
        .zip(got["otps"].as_array().unwrap())
    {
        assert_eq!(
            have["normalised"], want["normalised"],
            "otp {}",
            want["input"]
        );
        assert_eq!(
            have["hash"], want["sha256_hex_of_normalised"],
            "otp hash {}",
            want["input"]
        );
        assert_eq!(
            have["shown"], want["formatted_for_display"],
            "otp display {}",
            want["input"]
        );
    }
    for (want, have) in v["extension_token_hash"]
        .as_array()
        .unwrap()
        .iter()
        .zip(got["tokens"].as_array().unwrap())
    {
        assert_eq!(have, &want["token_hash"]);
    }
    for (want, have) in v["key_with_arbitrary_salt_prefix"]
        .as_array()
        .unwrap()
        .iter()
        .zip(got["salted"].as_array().unwrap())
    {
        assert_eq!(have, &want["aes_key_hex"]);
    }
    Ok(())
}

/// The page and the Rust client agree on fresh inputs: the same hashes, and each opens what the
/// other sealed.
async fn check_against_rust_client(page: &Browser, phone: &str) -> TestResult {
    let pin = "٣٣٩7-é";
    let identity = Identity::derive(phone, pin)?;
    let key = identity.derive_key();
    let rust_text = "from Rust: ünïcödé ✓ 🔐";
    let sealed = key.encrypt(rust_text)?;
    let page_text = "from the browser: 你好 ✓";
    let got = page
        .client
        .execute_async(
            CROSS_SCRIPT,
            vec![
                json!(phone),
                json!(pin),
                json!(page_text),
                json!({"ciphertext": sealed.ciphertext, "iv": sealed.iv}),
            ],
        )
        .await?;
    assert!(got.get("error").is_none(), "cross script failed: {got}");
    assert_eq!(got["room"], identity.room_hash());
    assert_eq!(got["access"], identity.access_hash());
    assert_eq!(got["sender"], identity.sender_hash());
    assert_eq!(got["opened"], rust_text);
    let opened = key.decrypt(
        got["sealed"]["ciphertext"].as_str().unwrap(),
        got["sealed"]["iv"].as_str().unwrap(),
    )?;
    assert_eq!(opened, page_text);
    let again = RoomKey::derive(identity.normalised_phone(), identity.room_hash());
    assert_eq!(again.to_hex().as_str(), key.to_hex().as_str());
    Ok(())
}

/// The page never adds a history entry of its own and shows only "/" in the address bar.
/// `entries` is the length the browser's history had after the test's first navigation (the
/// driver's blank start page plus the site's one entry).
async fn assert_history_is_only_root(page: &Browser, entries: u64) -> TestResult {
    let h = page
        .js("return { len: history.length, path: location.pathname, search: location.search, hash: location.hash }")
        .await?;
    assert_eq!(h["path"], "/", "{}: address bar", page.name);
    assert_eq!(h["search"], "", "{}: address bar", page.name);
    assert_eq!(h["hash"], "", "{}: address bar", page.name);
    assert_eq!(h["len"], entries, "{}: history length", page.name);
    Ok(())
}

/// The pages as the browser receives them from the relay carry the spec's headers.
async fn check_headers(page: &Browser) -> TestResult {
    for path in [
        "/",
        "/chat",
        "/security",
        "/app.js",
        "/kdf-worker.js",
        "/style.css",
    ] {
        let h = page
            .client
            .execute_async(
                "const [path, done] = arguments; fetch(path).then((r) => done(Object.fromEntries(r.headers)), (e) => done({ error: String(e) }));",
                vec![json!(path)],
            )
            .await?;
        let csp = h["content-security-policy"].as_str().unwrap_or_default();
        for directive in [
            "script-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(
                csp.contains(directive),
                "{path}: CSP {csp:?} lacks {directive}"
            );
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{path}: {csp}"
        );
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-robots-tag"], "noindex, nofollow", "{path}");
        assert_eq!(h["cross-origin-opener-policy"], "same-origin", "{path}");
        assert_eq!(h["cross-origin-resource-policy"], "same-origin", "{path}");
        assert!(
            h["permissions-policy"]
                .as_str()
                .unwrap_or_default()
                .contains("camera=()"),
            "{path}"
        );
    }
    Ok(())
}

async fn history_len(page: &Browser) -> TestResult<u64> {
    Ok(page.js("return history.length").await?.as_u64().unwrap())
}

async fn session_keys(page: &Browser) -> TestResult<Vec<String>> {
    let keys = page
        .js("return Object.keys(sessionStorage)")
        .await?
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    Ok(keys)
}

fn message_texts(sel: &str) -> String {
    format!("Array.from(document.querySelectorAll('{sel}')).map((e) => e.textContent)")
}

async fn thread(page: &Browser) -> TestResult<Value> {
    page.js(&format!(
        "return {{ mine: {}, theirs: {}, meta: {} }}",
        message_texts("#thread li.mine .body"),
        message_texts("#thread li.theirs .body"),
        message_texts("#thread li .meta")
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_create_pair_and_talk() -> TestResult {
    let tools = match find_tools() {
        Ok(tools) => tools,
        Err(why) => {
            if std::env::var("STELGANO_REQUIRE_SYSTEM_DEPS").as_deref() == Ok("1") {
                panic!("browser test needs Chromium: {why}");
            }
            // Written straight to stderr: libtest captures eprintln! of passing tests, and a skip
            // must be seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n==================== SKIP ====================\n\
                 SKIP browser e2e test: {why}\n\
                 ==============================================\n"
            );
            return Ok(());
        }
    };

    // STELGANO_BROWSER_BASE points the test at a relay started by hand (e.g. `cargo run --release`
    // on the default port), to check the product exactly as a new user gets it.
    let dir = tempfile::tempdir()?;
    let (relay, base) = match std::env::var("STELGANO_BROWSER_BASE") {
        Ok(base) => (None, base.trim_end_matches('/').to_owned()),
        Err(_) => {
            // The spec's join time floor stays on: the pages must cope with it.
            let relay = stelgano_relay::Relay::start(stelgano_relay::Config {
                listen: "127.0.0.1:0".parse()?,
                data_dir: dir.path().to_path_buf(),
                ..stelgano_relay::Config::default()
            })
            .await?;
            let base = format!("http://{}", relay.local_addr());
            (Some(relay), base)
        }
    };
    let driver = Driver::start(&tools).await?;
    let mut alice = Browser::open("alice", &tools, &driver).await?;
    let mut bob = Browser::open("bob", &tools, &driver).await?;
    let outcome = scenario(&base, &mut alice, &mut bob).await;

    // Console entries are collected even after a failure, to explain it.
    for page in [&mut alice, &mut bob] {
        let _ = page.drain_console().await;
        for line in &page.console {
            eprintln!("[{} console] {line}", page.name);
        }
    }
    let console_problems: Vec<String> = [&alice, &bob]
        .iter()
        .flat_map(|p| p.console.iter().map(move |l| format!("{}: {l}", p.name)))
        .filter(|l| !l.contains(CONSOLE_PROBE))
        .filter(|l| {
            l.contains("SEVERE") || l.contains("WARNING") || l.contains("Content Security Policy")
        })
        .collect();
    alice.close().await?;
    bob.close().await?;
    drop(driver);
    if let Some(relay) = relay {
        relay.shutdown().await;
    }
    outcome?;
    assert!(
        console_problems.is_empty(),
        "console errors: {console_problems:#?}"
    );
    eprintln!("screenshots in {}", artifacts_dir().display());
    Ok(())
}

async fn scenario(base: &str, alice: &mut Browser, bob: &mut Browser) -> TestResult {
    // The landing page, then the app opened from it the way a person would.
    alice.goto(&format!("{base}/")).await?;
    alice
        .wait_for("landing", "document.querySelector('a.cta')")
        .await?;
    let alice_entries = history_len(alice).await?;
    // The console capture itself works: a probe written by the page comes back through the log.
    alice
        .js(&format!("console.error('{CONSOLE_PROBE}')"))
        .await?;
    alice.drain_console().await?;
    assert!(
        alice.console.iter().any(|l| l.contains(CONSOLE_PROBE)),
        "the browser console is not being captured: {:?}",
        alice.console
    );
    assert_history_is_only_root(alice, alice_entries).await?;
    alice.screenshots("01-landing").await?;
    alice.click("header a[href='/security']").await?;
    alice
        .wait_for("security page", "document.title.includes('Security')")
        .await?;
    assert_history_is_only_root(alice, alice_entries).await?;
    alice.screenshots("02-security").await?;
    alice.click("footer a[href='/']").await?;
    alice
        .wait_for("landing", "document.querySelector('a.cta')")
        .await?;
    check_headers(alice).await?;
    alice.click("a.cta").await?;
    alice.wait_screen("entry").await?;
    assert_history_is_only_root(alice, alice_entries).await?;
    alice.screenshots("03-entry-join").await?;

    // Crypto in the page: the spec's vectors, then fresh inputs against the Rust client.
    check_vectors(alice).await?;
    let generated = alice
        .js("return (await import('/steg.js')).generateNumber('KE').e164")
        .await;
    let fresh = match generated {
        Ok(Value::String(n)) => n,
        _ => "+254711000222".to_owned(),
    };
    check_against_rust_client(alice, &fresh).await?;

    // Alice creates a channel with a generated number.
    alice.click("#tab-create").await?;
    alice
        .wait_for(
            "generated number",
            "document.getElementById('create-num').value.startsWith('+')",
        )
        .await?;
    alice.js("const s = document.getElementById('create-country'); s.value = 'GB'; s.dispatchEvent(new Event('change'));").await?;
    let number = alice
        .js("return document.getElementById('create-num').value")
        .await?;
    let number = number.as_str().unwrap().to_owned();
    assert!(number.starts_with("+44 7"), "generated {number}");
    alice.screenshots("04-entry-create").await?;
    alice.type_into("#create-pin", "2468").await?;
    alice.click("#form-create button[type=submit]").await?;
    alice.wait_screen("new_channel").await?;
    assert_eq!(alice.text("#new-num").await?, number);
    alice.screenshots("05-new-channel").await?;
    // The vCard download (a blob: link) and the copy button must not trip the CSP or throw.
    alice.click("#new-vcard").await?;
    alice.click("#new-copy").await?;
    alice.type_into("#new-pin", "2468").await?;
    alice.click("#new-terms").await?;
    alice.click("#form-new button[type=submit]").await?;
    alice.wait_screen("chat").await?;
    alice
        .wait_for(
            "pairing banner",
            "!document.getElementById('pairing').hidden",
        )
        .await?;
    let code = alice.text("#pairing-code").await?;
    assert_eq!(code.len(), 9, "pairing code {code}");
    assert_eq!(alice.text("#chat-ttl").await?, "Channel expires in 7 days");
    // The pending code is the only thing in session storage, under the app's prefix, sealed.
    assert_eq!(session_keys(alice).await?, vec!["stg:pairing".to_owned()]);
    let stored = alice
        .js("return sessionStorage.getItem('stg:pairing')")
        .await?;
    assert!(
        !stored.as_str().unwrap().contains(&code[..4]),
        "the pairing code is stored sealed"
    );
    alice.screenshots("06-chat-awaiting-party").await?;

    // Bob opens the app directly and joins with the number and his own PIN.
    bob.goto(&format!("{base}/chat")).await?;
    bob.wait_screen("entry").await?;
    let bob_entries = history_len(bob).await?;
    assert_history_is_only_root(bob, bob_entries).await?;
    bob.type_into("#join-num", &number).await?;
    bob.type_into("#join-pin", "1357").await?;
    bob.click("#form-join button[type=submit]").await?;
    bob.wait_screen("pair").await?;
    bob.type_into("#pair-code", "0000-0000").await?;
    bob.type_into("#pair-pin", "1357").await?;
    bob.click("#form-pair button[type=submit]").await?;
    bob.wait_for(
        "incorrect code",
        "!document.getElementById('pair-msg').hidden",
    )
    .await?;
    assert!(bob.text("#pair-msg").await?.starts_with("Incorrect code"));
    bob.screenshots("07-pair-wrong-code").await?;
    bob.type_into("#pair-code", &code.to_lowercase()).await?;
    bob.type_into("#pair-pin", "1357").await?;
    bob.click("#form-pair button[type=submit]").await?;
    bob.wait_screen("chat").await?;
    alice
        .wait_for("party_paired", "document.getElementById('pairing').hidden")
        .await?;
    assert!(
        session_keys(alice).await?.is_empty(),
        "pairing code forgotten once paired"
    );
    bob.screenshots("08-chat-empty").await?;

    // Alice writes; Bob reads it, which Alice sees as a read receipt.
    alice
        .type_into("#compose-text", "Hello Bob, it is me.")
        .await?;
    alice.click("#composer button[type=submit]").await?;
    bob.wait_for(
        "alice's message",
        "document.querySelector('#thread li.theirs .body')",
    )
    .await?;
    assert_eq!(
        thread(bob).await?["theirs"],
        json!(["Hello Bob, it is me."])
    );
    alice
        .wait_for(
            "read receipt",
            "document.querySelector('#thread li.mine .meta')?.textContent === 'Read'",
        )
        .await?;
    assert!(
        alice
            .js("return document.getElementById('composer').hidden")
            .await?
            .as_bool()
            .unwrap(),
        "not Alice's turn"
    );
    alice.screenshots("09-chat-read").await?;

    // Bob replies; Alice sees him typing first.
    bob.client
        .find(fantoccini::Locator::Css("#compose-text"))
        .await?
        .send_keys("Hi Alice!")
        .await?;
    alice
        .wait_for(
            "typing indicator",
            "!document.getElementById('typing').hidden",
        )
        .await?;
    alice.screenshots("10-chat-typing").await?;
    bob.click("#composer button[type=submit]").await?;
    alice
        .wait_for(
            "bob's reply",
            "document.querySelector('#thread li.theirs .body')",
        )
        .await?;
    let t = thread(alice).await?;
    assert_eq!(t["theirs"], json!(["Hi Alice!"]));
    assert_eq!(
        alice
            .js("return document.getElementById('typing').hidden")
            .await?,
        true,
        "a sent message ends the typing indicator"
    );
    assert_eq!(
        t["mine"],
        json!(["Hello Bob, it is me."]),
        "the answered message stays as context"
    );
    bob.wait_for(
        "read receipt",
        "document.querySelector('#thread li.mine .meta')?.textContent === 'Read'",
    )
    .await?;
    bob.screenshots("11-chat-reply-read").await?;

    // Bob locks: keys dropped, the thread gone from the page.
    bob.click("#chat-lock").await?;
    bob.wait_screen("locked").await?;
    assert_eq!(
        bob.js("return document.querySelectorAll('#thread li').length")
            .await?,
        0
    );
    bob.screenshots("12-locked").await?;

    // While Bob is away Alice writes, then edits before it is read.
    alice
        .type_into("#compose-text", "Meet at the usual place at 6.")
        .await?;
    alice.click("#composer button[type=submit]").await?;
    alice.wait_for("delivered", "document.querySelector('#thread li.mine:last-child .meta')?.textContent === 'Delivered'").await?;
    alice
        .click("#thread li.mine:last-child .msg-tools button")
        .await?;
    alice
        .wait_for("editor", "document.getElementById('edit-text')")
        .await?;
    alice.screenshots("13-chat-editing").await?;
    alice
        .type_into("#edit-text", "Meet at the usual place at 7.")
        .await?;
    alice
        .click("#thread form.editor button[type=submit]")
        .await?;
    alice.wait_for("edited", "document.querySelector('#thread li.mine:last-child .meta')?.textContent === 'Delivered · Edited'").await?;

    // A wrong PIN, then the right one: Bob resumes and sees only the edited text.
    bob.type_into("#unlock-pin", "9999").await?;
    bob.click("#unlock-go").await?;
    bob.wait_for("wrong PIN", "document.body.dataset.state === 'locked' && document.getElementById('locked-msg').textContent.includes('attempts left')").await?;
    bob.screenshots("14-locked-wrong-pin").await?;
    bob.type_into("#unlock-pin", "1357").await?;
    bob.click("#unlock-go").await?;
    // 600,000 PBKDF2 rounds in the worker leave time to see the progress screen.
    bob.wait_screen("deriving").await?;
    bob.screenshots("15a-deriving").await?;
    bob.wait_screen("chat").await?;
    bob.wait_for(
        "edited message",
        "document.querySelector('#thread li.theirs .body')",
    )
    .await?;
    assert_eq!(
        thread(bob).await?["theirs"],
        json!(["Meet at the usual place at 7."])
    );
    bob.wait_for(
        "failed-attempts warning",
        "!document.getElementById('chat-warn').hidden",
    )
    .await?;
    assert!(bob.text("#chat-warn").await?.contains("1 time"));
    alice.wait_for("read after edit", "document.querySelector('#thread li.mine:last-child .meta')?.textContent === 'Read · Edited'").await?;
    bob.screenshots("15-chat-after-unlock").await?;
    alice.screenshots("16-chat-edited-read").await?;

    assert_history_is_only_root(alice, alice_entries).await?;
    assert_history_is_only_root(bob, bob_entries).await?;

    // Delete before read: with Alice locked, Bob sends, thinks better of it and deletes; the room is
    // empty again, so it is still his turn, and Alice comes back to nothing new.
    alice.click("#chat-lock").await?;
    alice.wait_screen("locked").await?;
    bob.type_into("#compose-text", "Actually, forget that")
        .await?;
    bob.click("#composer button[type=submit]").await?;
    bob.wait_for(
        "delivered",
        "document.querySelector('#thread li.mine .meta')?.textContent === 'Delivered'",
    )
    .await?;
    bob.click("#thread li.mine .msg-tools button:last-child")
        .await?;
    bob.wait_for(
        "deleted",
        "!document.querySelector('#thread li.mine') && !document.getElementById('composer').hidden",
    )
    .await?;
    alice.type_into("#unlock-pin", "2468").await?;
    alice.click("#unlock-go").await?;
    alice.wait_screen("chat").await?;
    assert_eq!(
        alice
            .js("return document.querySelectorAll('#thread li').length")
            .await?,
        0,
        "the deleted message never reaches Alice"
    );
    assert!(!alice
        .js("return document.getElementById('share').hidden")
        .await?
        .as_bool()
        .unwrap());

    // Panic on Bob's side: /x lands on the clean landing page with nothing stored.
    bob.js("sessionStorage.setItem('stg:probe', '1')").await?;
    bob.click("#panic").await?;
    bob.wait_for(
        "landing after panic",
        "document.querySelector('a.cta') && location.pathname === '/'",
    )
    .await?;
    assert!(
        session_keys(bob).await?.is_empty(),
        "panic clears session storage"
    );
    assert_history_is_only_root(bob, bob_entries).await?;

    // Alice burns the channel.
    alice.click("#chat-burn").await?;
    alice
        .wait_for("burn dialog", "document.getElementById('burn-dialog').open")
        .await?;
    alice.screenshots("17-burn-confirm").await?;
    alice.click("#burn-dialog button[value=burn]").await?;
    alice.wait_screen("expired").await?;
    alice.screenshots("18-expired").await?;
    assert_history_is_only_root(alice, alice_entries).await?;

    // The number now opens nothing: join mode says so and offers to create.
    alice.click("#expired-back").await?;
    alice.wait_screen("entry").await?;
    alice.click("#tab-join").await?;
    alice.type_into("#join-num", &number).await?;
    alice.type_into("#join-pin", "2468").await?;
    alice.click("#form-join button[type=submit]").await?;
    alice
        .wait_for(
            "no channel",
            "!document.getElementById('entry-offer').hidden",
        )
        .await?;
    alice.screenshots("19-entry-no-channel").await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}
