//! End-to-end tests of the browser client in real headless Chromium: isolated browser profiles
//! create, pair and use a channel through an in-process relay (the std-1 vectors and the Rust
//! client's derivations checked inside the page), then the recovery paths: a lost pairing code, a
//! taken number, a relay restart under an open chat, a lock's countdown, erase, panic. axe-core
//! checks the screens in light and dark mode. Screenshots of every screen at phone and laptop
//! size go to `target/browser-artifacts/` (or `STELGANO_ARTIFACTS`).
//!
//! Needs Debian's `chromium` and `chromium-driver`, and axe-core installed by
//! `npm install --prefix relay/tests/vendor axe-core@4`; without them a test prints a loud SKIP
//! and passes, unless `STELGANO_REQUIRE_SYSTEM_DEPS=1`, when it fails.
#![allow(clippy::unwrap_used)]

mod browser_support;
mod common;
mod helpers;

use std::net::SocketAddr;
use std::time::Duration;

use browser_support::{artifacts_dir, axe_source, find_tools, Browser, Driver, TestResult, Tools};
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
        "/gone",
        "/app.js",
        "/session.js",
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

fn require_deps() -> bool {
    std::env::var("STELGANO_REQUIRE_SYSTEM_DEPS").as_deref() == Ok("1")
}

/// Written straight to stderr: libtest captures eprintln! of passing tests, and a skip must be seen.
fn loud_skip(why: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n==================== SKIP ====================\n\
         SKIP {why}\n\
         ==============================================\n"
    );
}

/// The browser tests run one at a time: each drives two Chromiums, and CI may have two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One test's relay, chromedriver and accessibility findings.
struct Rig {
    _serial: tokio::sync::MutexGuard<'static, ()>,
    tools: Tools,
    driver: Driver,
    relay: Option<stelgano_relay::Relay>,
    /// The relay mounted in an axum site under a prefix, when a test asks for that instead.
    mounted: Option<stelgano_relay::Embedded>,
    config: stelgano_relay::Config,
    addr: SocketAddr,
    base: String,
    _dir: tempfile::TempDir,
    axe: Option<String>,
    a11y: Vec<String>,
}

impl Rig {
    /// `None` (after a loud SKIP) when Chromium is missing on a developer's box. With
    /// `allow_external`, STELGANO_BROWSER_BASE points the test at a relay started by hand (e.g.
    /// `cargo run --release` on the default port), to check the product as a new user gets it.
    async fn start(
        allow_external: bool,
        tweak: impl FnOnce(&mut stelgano_relay::Config),
    ) -> TestResult<Option<Rig>> {
        Self::start_at(allow_external, None, tweak).await
    }

    /// As `start`, with the relay mounted under `prefix` of an axum site (docs/EMBEDDING.md)
    /// when one is given; `base` is then the site's address with the prefix.
    async fn start_at(
        allow_external: bool,
        prefix: Option<&str>,
        tweak: impl FnOnce(&mut stelgano_relay::Config),
    ) -> TestResult<Option<Rig>> {
        let serial = SERIAL.lock().await;
        let tools = match find_tools() {
            Ok(tools) => tools,
            Err(why) => {
                if require_deps() {
                    return Err(format!("browser test needs Chromium: {why}").into());
                }
                loud_skip(&format!("browser e2e test: {why}"));
                return Ok(None);
            }
        };
        let axe = axe_source();
        if axe.is_none() {
            let why =
                "axe-core is not installed (npm install --prefix relay/tests/vendor axe-core@4)";
            if require_deps() {
                return Err(why.into());
            }
            loud_skip(&format!("accessibility checks: {why}"));
        }
        let dir = tempfile::tempdir()?;
        // The spec's join time floor stays on unless a test says otherwise: the pages must cope.
        let mut config = stelgano_relay::Config {
            listen: "127.0.0.1:0".parse()?,
            data_dir: dir.path().to_path_buf(),
            ..stelgano_relay::Config::default()
        };
        tweak(&mut config);
        let external = std::env::var("STELGANO_BROWSER_BASE")
            .ok()
            .filter(|_| allow_external);
        let mut mounted = None;
        let (relay, base, addr) = match external {
            Some(base) => {
                let base = base.trim_end_matches('/').to_owned();
                let url = url::Url::parse(&base)?;
                let addr = url
                    .socket_addrs(|| Some(80))?
                    .into_iter()
                    .next()
                    .ok_or("STELGANO_BROWSER_BASE names no address")?;
                (None, base, addr)
            }
            None => match prefix {
                Some(prefix) => {
                    let relay = stelgano_relay::Embedded::start(config.clone()).await?;
                    let addr = helpers::mount_in_axum(&relay, prefix).await;
                    mounted = Some(relay);
                    (None, format!("http://{addr}{prefix}"), addr)
                }
                None => {
                    let relay = stelgano_relay::Relay::start(config.clone()).await?;
                    let addr = relay.local_addr();
                    (Some(relay), format!("http://{addr}"), addr)
                }
            },
        };
        let driver = Driver::start(&tools).await?;
        Ok(Some(Rig {
            _serial: serial,
            tools,
            driver,
            relay,
            mounted,
            config,
            addr,
            base,
            _dir: dir,
            axe,
            a11y: Vec::new(),
        }))
    }

    async fn browser(&self, name: &'static str) -> TestResult<Browser> {
        Browser::open(name, &self.tools, &self.driver).await
    }

    async fn stop_relay(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.shutdown().await;
        }
        if let Some(relay) = self.mounted.take() {
            relay.shutdown().await;
        }
    }

    /// A restart: a new relay on the same port and data directory.
    async fn start_relay(&mut self) -> TestResult {
        let mut config = self.config.clone();
        config.listen = self.addr;
        for _ in 0..50 {
            if let Ok(relay) = stelgano_relay::Relay::start(config.clone()).await {
                self.relay = Some(relay);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("the relay did not come back on its port".into())
    }

    /// Screenshots at both sizes, then axe-core in light and dark mode.
    async fn capture(&mut self, page: &Browser, name: &str) -> TestResult {
        page.screenshots(name).await?;
        let Some(axe) = self.axe.clone() else {
            return Ok(());
        };
        for dark in [false, true] {
            page.color_scheme(dark).await?;
            let mode = if dark { "dark" } else { "light" };
            let found = page.axe(&axe, &format!("{name} ({mode})")).await?;
            self.a11y.extend(found);
        }
        page.color_scheme(false).await?;
        Ok(())
    }

    /// Collects the consoles (even after a failure, to explain it), closes everything, then
    /// reports the outcome, console problems and accessibility findings. `tolerated` names console
    /// lines the test itself causes (a refused connection while it holds the relay down).
    async fn finish(
        mut self,
        pages: Vec<Browser>,
        outcome: TestResult,
        tolerated: &[&str],
    ) -> TestResult {
        let mut problems = Vec::new();
        for mut page in pages {
            let _ = page.drain_console().await;
            for line in &page.console {
                eprintln!("[{} console] {line}", page.name);
                let problem = line.contains("SEVERE")
                    || line.contains("WARNING")
                    || line.contains("Content Security Policy");
                if problem
                    && !line.contains(CONSOLE_PROBE)
                    && !tolerated.iter().any(|t| line.contains(t))
                {
                    problems.push(format!("{}: {line}", page.name));
                }
            }
            let _ = page.close().await;
        }
        self.stop_relay().await;
        outcome?;
        assert!(problems.is_empty(), "console errors: {problems:#?}");
        assert!(
            self.a11y.is_empty(),
            "serious or critical accessibility findings: {:#?}",
            self.a11y
        );
        eprintln!("screenshots in {}", artifacts_dir().display());
        Ok(())
    }
}

async fn value(page: &Browser, id: &str) -> TestResult<String> {
    let v = page
        .js(&format!("return document.getElementById('{id}').value"))
        .await?;
    Ok(v.as_str().unwrap_or_default().to_owned())
}

async fn is_hidden(page: &Browser, id: &str) -> TestResult<bool> {
    let v = page
        .js(&format!("return document.getElementById('{id}').hidden"))
        .await?;
    Ok(v.as_bool().unwrap_or(false))
}

async fn wait_shown(page: &Browser, id: &str) -> TestResult {
    page.wait_for(
        &format!("#{id} shown"),
        &format!("!document.getElementById('{id}').hidden"),
    )
    .await
}

/// A guesser who knows the number tries a wrong PIN, straight over the protocol.
async fn intruder_tries(addr: SocketAddr, number: &str) -> TestResult {
    let room = Identity::derive(number, "0000")?.room_hash().to_owned();
    let mut peer = common::Peer::connect(addr, &room).await;
    let v = peer.join(&common::Who::new()).await;
    assert_eq!(v["error"]["reason"], "unauthorized", "{v}");
    Ok(())
}

/// WebDriver key codes.
const ENTER: &str = "\u{E007}";
const SHIFT: &str = "\u{E008}";
const RELEASE: &str = "\u{E000}";

async fn keys(page: &Browser, css: &str, text: &str) -> TestResult {
    page.client
        .find(fantoccini::Locator::Css(css))
        .await?
        .send_keys(text)
        .await?;
    Ok(())
}

async fn create_channel(
    page: &mut Browser,
    rig: &mut Rig,
    pin: &str,
    shots: bool,
) -> TestResult<String> {
    // A page already on the entry screen is used as it is (a navigation would add history).
    if page.js("return document.body.dataset.state").await? != "entry" {
        page.goto(&format!("{}/chat", rig.base)).await?;
        page.wait_screen("entry").await?;
    }
    page.click("#tab-create").await?;
    page.wait_for(
        "generated number",
        "document.getElementById('create-num').value.startsWith('+')",
    )
    .await?;
    page.js("const s = document.getElementById('create-country'); s.value = 'GB'; s.dispatchEvent(new Event('change'));").await?;
    let number = value(page, "create-num").await?;
    assert!(number.starts_with("+44 7"), "generated {number}");
    if shots {
        rig.capture(page, "04-entry-create").await?;
    }
    page.type_into("#create-pin", pin).await?;
    page.click("#form-create-go").await?;
    page.wait_screen("new_channel").await?;
    assert_eq!(page.text("#new-num").await?, number);
    if shots {
        rig.capture(page, "05-new-channel").await?;
        // The vCard download (a blob: link) and the copy button must not trip the CSP or throw.
        page.click("#new-vcard").await?;
        page.click("#new-copy").await?;
    }
    page.type_into("#new-pin", pin).await?;
    // The terms box forgotten: the PIN just typed must survive that unrelated mistake.
    page.click("#form-new button[type=submit]").await?;
    wait_shown(page, "new-msg").await?;
    assert!(page.text("#new-msg").await?.contains("Tick the box"));
    assert_eq!(
        value(page, "new-pin").await?,
        pin,
        "the PIN survives the terms error"
    );
    page.click("#new-terms").await?;
    page.click("#form-new button[type=submit]").await?;
    page.wait_screen("chat").await?;
    wait_shown(page, "pairing").await?;
    Ok(number)
}

async fn join_number(page: &Browser, number: &str, pin: &str) -> TestResult {
    page.click("#tab-join").await?;
    page.type_into("#join-num", number).await?;
    page.type_into("#join-pin", pin).await?;
    page.click("#form-join-go").await?;
    Ok(())
}

async fn pair_with(page: &Browser, code: &str, pin: &str) -> TestResult {
    page.type_into("#pair-code", code).await?;
    page.type_into("#pair-pin", pin).await?;
    page.click("#form-pair button[type=submit]").await?;
    Ok(())
}

async fn unlock_with(page: &Browser, pin: &str) -> TestResult {
    page.type_into("#unlock-pin", pin).await?;
    page.click("#unlock-go").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_create_pair_and_talk() -> TestResult {
    let Some(mut rig) = Rig::start(true, |_| {}).await? else {
        return Ok(());
    };
    let mut alice = rig.browser("alice").await?;
    let mut bob = rig.browser("bob").await?;
    let outcome = scenario(&mut rig, &mut alice, &mut bob).await;
    rig.finish(vec![alice, bob], outcome, &[]).await
}

async fn scenario(rig: &mut Rig, alice: &mut Browser, bob: &mut Browser) -> TestResult {
    let base = rig.base.clone();
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
    rig.capture(alice, "01-landing").await?;
    alice.click("header a[href='security']").await?;
    alice
        .wait_for("security page", "document.title.includes('Security')")
        .await?;
    assert_history_is_only_root(alice, alice_entries).await?;
    rig.capture(alice, "02-security").await?;
    alice.click("footer a[href='./']").await?;
    alice
        .wait_for("landing", "document.querySelector('a.cta')")
        .await?;
    check_headers(alice).await?;
    alice.click("a.cta").await?;
    alice.wait_screen("entry").await?;
    assert_history_is_only_root(alice, alice_entries).await?;
    rig.capture(alice, "03-entry-join").await?;
    assert!(
        alice
            .text("#pin-hint-j")
            .await?
            .contains("choosing your PIN now"),
        "a first-time joiner is told the PIN is being chosen"
    );

    // Crypto in the page: the spec's vectors, then fresh inputs against the Rust client.
    check_vectors(alice).await?;
    let generated = alice
        .js("return (await import('./steg.js')).generateNumber('KE').e164")
        .await;
    let fresh = match generated {
        Ok(Value::String(n)) => n,
        _ => "+254711000222".to_owned(),
    };
    check_against_rust_client(alice, &fresh).await?;

    // Alice creates a channel with a generated number.
    let number = create_channel(alice, rig, "2468", true).await?;
    let code = alice.text("#pairing-code").await?;
    assert_eq!(code.len(), 9, "pairing code {code}");
    let ttl = alice.text("#chat-ttl").await?;
    assert!(ttl.starts_with("Closes by itself in 7 days, on "), "{ttl}");
    // The pending code is the only thing in session storage, under the app's prefix, sealed.
    assert_eq!(session_keys(alice).await?, vec!["stg:pairing".to_owned()]);
    let stored = alice
        .js("return sessionStorage.getItem('stg:pairing')")
        .await?;
    assert!(
        !stored.as_str().unwrap().contains(&code[..4]),
        "the pairing code is stored sealed"
    );
    rig.capture(alice, "06-chat-awaiting-party").await?;

    // Bob opens the app directly and joins with the number and his own PIN.
    bob.goto(&format!("{base}/chat")).await?;
    bob.wait_screen("entry").await?;
    let bob_entries = history_len(bob).await?;
    assert_history_is_only_root(bob, bob_entries).await?;
    join_number(bob, &number, "1357").await?;
    bob.wait_screen("pair").await?;
    rig.capture(bob, "07-pair").await?;
    pair_with(bob, "0000-0000", "1357").await?;
    wait_shown(bob, "pair-msg").await?;
    let said = bob.text("#pair-msg").await?;
    assert!(
        said.starts_with("Incorrect code") && said.contains("9 tries left before pairing locks"),
        "{said}"
    );
    rig.capture(bob, "08-pair-wrong-code").await?;
    pair_with(bob, &code.to_lowercase(), "1357").await?;
    bob.wait_screen("chat").await?;
    alice
        .wait_for("party_paired", "document.getElementById('pairing').hidden")
        .await?;
    assert!(
        session_keys(alice).await?.is_empty(),
        "pairing code forgotten once paired"
    );
    // Once paired nobody is told the other still needs the number.
    for page in [&*alice, &*bob] {
        wait_shown(page, "empty").await?;
        assert!(is_hidden(page, "share").await?, "{}: share box", page.name);
    }
    rig.capture(bob, "09-chat-empty").await?;

    // Alice writes with Enter (Shift+Enter makes a second line); Bob's page, visible and focused,
    // reads it, which Alice sees as a read receipt.
    assert!(alice.text("#compose-hint").await?.contains("Shift+Enter"));
    keys(
        alice,
        "#compose-text",
        &format!("Hello Bob,{SHIFT}{ENTER}{RELEASE}it is me.{ENTER}"),
    )
    .await?;
    bob.wait_for(
        "alice's message",
        "document.querySelector('#thread li.theirs .body')",
    )
    .await?;
    assert_eq!(
        thread(bob).await?["theirs"],
        json!(["Hello Bob,\nit is me."])
    );
    assert_eq!(value(alice, "compose-text").await?, "", "Enter sent it");
    alice
        .wait_for(
            "read receipt",
            "document.querySelector('#thread li.mine .meta')?.textContent === 'Read'",
        )
        .await?;
    assert!(is_hidden(alice, "composer").await?, "not Alice's turn");
    // This relay takes no extension tokens (api/config says so): the action is not offered.
    assert!(is_hidden(alice, "extend").await?, "no extension offered");
    rig.capture(alice, "10-chat-read").await?;

    // The byte counter counts what the relay's limit counts: 2,100 emoji are 8,400 bytes, under
    // 4,000 characters but over the limit, and the page says so before Send.
    bob.js("const t = document.getElementById('compose-text'); t.value = '😀'.repeat(2100); t.dispatchEvent(new Event('input'));").await?;
    wait_shown(bob, "compose-limit").await?;
    assert!(bob
        .text("#compose-count")
        .await?
        .contains("8,400 / 8,176 bytes"));
    assert_eq!(
        bob.js("return document.getElementById('compose-send').disabled")
            .await?,
        true
    );
    rig.capture(bob, "11-chat-too-long").await?;
    bob.js("const t = document.getElementById('compose-text'); t.value = ''; t.dispatchEvent(new Event('input'));").await?;

    // Bob replies; Alice sees him typing first.
    keys(bob, "#compose-text", "Hi Alice!").await?;
    wait_shown(alice, "typing").await?;
    rig.capture(alice, "12-chat-typing").await?;
    bob.click("#compose-send").await?;
    alice
        .wait_for(
            "bob's reply",
            "document.querySelector('#thread li.theirs .body')",
        )
        .await?;
    let t = thread(alice).await?;
    assert_eq!(t["theirs"], json!(["Hi Alice!"]));
    assert!(
        is_hidden(alice, "typing").await?,
        "a sent message ends the typing indicator"
    );
    assert_eq!(
        t["mine"],
        json!(["Hello Bob,\nit is me."]),
        "the answered message stays as context"
    );
    bob.wait_for(
        "read receipt",
        "document.querySelector('#thread li.mine .meta')?.textContent === 'Read'",
    )
    .await?;
    rig.capture(bob, "13-chat-reply-read").await?;

    // Read only when seen: with Bob's chat tab in the background, Alice's message stays unread
    // and she can still edit it; Bob's return to the tab reads the edited text.
    let chat_tab = bob.client.window().await?;
    let other = bob.client.new_window(true).await?;
    bob.client.switch_to_window(other.handle).await?;
    assert_eq!(
        bob.js("return document.visibilityState").await?,
        "visible",
        "the new tab is in front"
    );
    keys(alice, "#compose-text", &format!("See you at 6.{ENTER}")).await?;
    alice.wait_for("delivered", "document.querySelector('#thread li.mine:last-child .meta')?.textContent === 'Delivered'").await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        alice.text("#thread li.mine:last-child .meta").await?,
        "Delivered",
        "a message in a background tab is not read"
    );
    alice.click("#thread li.mine:last-child .msg-edit").await?;
    alice
        .wait_for("editor", "document.getElementById('edit-text')")
        .await?;
    rig.capture(alice, "14-chat-editing").await?;
    alice.type_into("#edit-text", "See you at 7.").await?;
    alice
        .click("#thread form.editor button[type=submit]")
        .await?;
    alice.wait_for("edited", "document.querySelector('#thread li.mine:last-child .meta')?.textContent === 'Delivered · Edited'").await?;
    bob.client.close_window().await?;
    bob.client.switch_to_window(chat_tab).await?;
    alice.wait_for("read once seen", "document.querySelector('#thread li.mine:last-child .meta')?.textContent === 'Read · Edited'").await?;
    assert_eq!(bob.text("#thread li.theirs .body").await?, "See you at 7.");

    // The Security link opens in a dialog, and the chat carries on behind it.
    bob.click("header a[data-security]").await?;
    bob.wait_for(
        "security dialog",
        "document.getElementById('security-dialog').open && document.getElementById('security-body').textContent.includes('Threat model')",
    )
    .await?;
    rig.capture(bob, "15-chat-security").await?;
    bob.click("#security-close").await?;
    assert_eq!(
        bob.js("return document.body.dataset.state").await?,
        "chat",
        "reading the security page keeps the session"
    );

    // Bob locks: keys dropped, the thread gone from the page.
    bob.click("#chat-lock").await?;
    bob.wait_screen("locked").await?;
    assert_eq!(
        bob.js("return document.querySelectorAll('#thread li').length")
            .await?,
        0
    );
    rig.capture(bob, "16-locked").await?;

    // His own wrong PIN is not reported to him as an intruder...
    unlock_with(bob, "9999").await?;
    bob.wait_for("wrong PIN", "document.body.dataset.state === 'locked' && document.getElementById('locked-msg').textContent.includes('tries left')").await?;
    rig.capture(bob, "17-locked-wrong-pin").await?;
    unlock_with(bob, "1357").await?;
    // 600,000 PBKDF2 rounds in the worker leave time to see the progress screen.
    bob.wait_screen("deriving").await?;
    rig.capture(bob, "18-deriving").await?;
    bob.wait_screen("chat").await?;
    assert!(
        is_hidden(bob, "chat-warn").await?,
        "the page's own wrong PIN is no intruder"
    );
    // ...but every later attempt by someone else is, on each join that reports one.
    for round in 1..=2 {
        intruder_tries(rig.addr, &number).await?;
        bob.click("#chat-lock").await?;
        bob.wait_screen("locked").await?;
        unlock_with(bob, "1357").await?;
        bob.wait_screen("chat").await?;
        wait_shown(bob, "chat-warn").await?;
        let warn = bob.text("#chat-warn").await?;
        assert!(warn.contains("1 time "), "round {round}: {warn}");
    }
    rig.capture(bob, "19-chat-someone-tried").await?;

    assert_history_is_only_root(alice, alice_entries).await?;
    assert_history_is_only_root(bob, bob_entries).await?;

    // Delete asks first: with Alice locked, Bob sends, thinks better of it and deletes; the room
    // is empty again, and Alice comes back to nothing new.
    alice.click("#chat-lock").await?;
    alice.wait_screen("locked").await?;
    keys(
        bob,
        "#compose-text",
        &format!("Actually, forget that{ENTER}"),
    )
    .await?;
    bob.wait_for(
        "delivered",
        "document.querySelector('#thread li.mine .meta')?.textContent === 'Delivered'",
    )
    .await?;
    bob.click("#thread li.mine .msg-delete").await?;
    bob.wait_for(
        "delete dialog",
        "document.getElementById('delete-dialog').open",
    )
    .await?;
    rig.capture(bob, "20-delete-confirm").await?;
    bob.click("#delete-yes").await?;
    bob.wait_for(
        "deleted",
        "!document.querySelector('#thread li.mine') && !document.getElementById('composer').hidden",
    )
    .await?;
    unlock_with(alice, "2468").await?;
    alice.wait_screen("chat").await?;
    assert_eq!(
        alice
            .js("return document.querySelectorAll('#thread li').length")
            .await?,
        0,
        "the deleted message never reaches Alice"
    );

    // Alice burns the channel; Bob's page says who closed it.
    alice.click("#chat-burn").await?;
    alice
        .wait_for("burn dialog", "document.getElementById('burn-dialog').open")
        .await?;
    rig.capture(alice, "21-burn-confirm").await?;
    alice.click("#burn-dialog button[value=burn]").await?;
    alice.wait_screen("expired").await?;
    assert_eq!(
        alice.text("#expired-who").await?,
        "You closed this channel."
    );
    bob.wait_screen("expired").await?;
    assert_eq!(
        bob.text("#expired-who").await?,
        "The other person closed this channel."
    );
    rig.capture(alice, "22-expired").await?;
    assert_history_is_only_root(alice, alice_entries).await?;

    // The burned number is gone from every field and never offered again by this page.
    alice.click("#expired-back").await?;
    alice.wait_screen("entry").await?;
    for id in ["join-num", "join-pin", "create-pin", "compose-text"] {
        assert_eq!(value(alice, id).await?, "", "#{id} after a burn");
    }
    assert_ne!(value(alice, "create-num").await?, number);
    join_number(alice, &number, "2468").await?;
    alice.wait_screen("entry").await?;
    alice
        .wait_for(
            "closed",
            "document.getElementById('entry-msg').textContent.includes('was closed')",
        )
        .await?;
    assert!(
        is_hidden(alice, "entry-offer").await?,
        "no offer to create with a burned number"
    );
    rig.capture(alice, "23-entry-closed-number").await?;

    // Panic on Bob's side lands on a neutral page that names and explains nothing, with nothing
    // stored and no history entry leading back.
    bob.js("sessionStorage.setItem('stg:probe', '1')").await?;
    bob.click("#panic").await?;
    bob.wait_for("neutral page", "location.pathname === '/gone'")
        .await?;
    let landing = bob
        .js("return { title: document.title, text: document.body.innerText, len: history.length }")
        .await?;
    assert_eq!(landing["title"], "Page not found");
    let text = landing["text"].as_str().unwrap_or_default().to_lowercase();
    for word in [
        "stelgano", "channel", "message", "phone", "panic", "private",
    ] {
        assert!(!text.contains(word), "the panic page says {word:?}: {text}");
    }
    assert_eq!(landing["len"], bob_entries, "panic adds no history entry");
    assert!(
        session_keys(bob).await?.is_empty(),
        "panic clears session storage"
    );
    rig.capture(bob, "24-panic-landing").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_client_recovers() -> TestResult {
    // A short lock after three wrong PINs, to watch its countdown end; no join floor, to keep
    // the test short.
    let Some(mut rig) = Rig::start(false, |c| {
        c.join_floor = Duration::ZERO;
        c.join_jitter = Duration::ZERO;
        c.max_failures = 3;
        c.first_lock = Duration::from_secs(4);
        c.max_lock = Duration::from_secs(4);
        c.extension_tokens = true;
    })
    .await?
    else {
        return Ok(());
    };
    let mut alice = rig.browser("alice").await?;
    let mut bob = rig.browser("bob").await?;
    let outcome = recovery(&mut rig, &mut alice, &mut bob).await;
    // While the relay is down the browser itself logs the refused connections.
    rig.finish(
        vec![alice, bob],
        outcome,
        &["ERR_CONNECTION_REFUSED", "WebSocket connection to"],
    )
    .await
}

async fn recovery(rig: &mut Rig, alice: &mut Browser, bob: &mut Browser) -> TestResult {
    let base = rig.base.clone();
    // Alice creates a channel and leaves before Bob pairs: the code is gone with the page state.
    let number = create_channel(alice, rig, "2468", false).await?;
    let first_code = alice.text("#pairing-code").await?;
    alice.click("#chat-leave").await?;
    alice.wait_screen("entry").await?;
    assert!(alice.text("#entry-msg").await?.contains("You left"));
    assert_ne!(
        value(alice, "create-num").await?,
        number,
        "leave clears the number"
    );
    assert_eq!(value(alice, "join-num").await?, "");
    // Back in, the second seat still open: the pairing panel offers a new code.
    join_number(alice, &number, "2468").await?;
    alice.wait_screen("chat").await?;
    wait_shown(alice, "pairing").await?;
    wait_shown(alice, "pairing-no-code").await?;
    assert!(alice
        .text("#pairing-no-code")
        .await?
        .contains("cannot be shown again"));
    rig.capture(alice, "30-chat-pairing-lost-code").await?;
    alice.click("#pairing-new").await?;
    wait_shown(alice, "pairing-has-code").await?;
    let code = alice.text("#pairing-code").await?;
    assert_eq!(code.len(), 9);
    assert_ne!(code, first_code);

    // Bob tries to create a channel with a number that was just taken: a fresh number, PIN kept.
    bob.goto(&format!("{base}/chat")).await?;
    bob.wait_screen("entry").await?;
    bob.click("#tab-create").await?;
    bob.js(&format!(
        "document.getElementById('create-num').value = {}",
        json!(number)
    ))
    .await?;
    bob.type_into("#create-pin", "1357").await?;
    bob.click("#form-create-go").await?;
    bob.wait_screen("entry").await?;
    bob.wait_for(
        "taken",
        "document.getElementById('entry-msg').textContent.includes('just taken')",
    )
    .await?;
    assert_eq!(value(bob, "create-pin").await?, "1357", "the PIN survives");
    assert_ne!(value(bob, "create-num").await?, number);
    rig.capture(bob, "31-entry-number-taken").await?;

    // Bob pairs with the new code; the old one would not work.
    join_number(bob, &number, "1357").await?;
    bob.wait_screen("pair").await?;
    pair_with(bob, &code, "1357").await?;
    bob.wait_screen("chat").await?;
    alice
        .wait_for("paired", "document.getElementById('pairing').hidden")
        .await?;

    // Extending the channel with a token the operator minted: a used or unknown token is
    // explained, a good one moves the closing date on both pages.
    let tokens = stelgano_relay::admin::mint(rig._dir.path(), 1, 7).await?;
    wait_shown(alice, "extend").await?;
    let before = bob.text("#chat-ttl").await?;
    alice.type_into("#extend-token", &"0".repeat(64)).await?;
    alice.click("#extend-go").await?;
    alice
        .wait_for(
            "bad token explained",
            "document.getElementById('extend-msg').textContent.includes('unknown or already used')",
        )
        .await?;
    alice
        .js("document.getElementById('extend-token').value = ''")
        .await?;
    alice.type_into("#extend-token", &tokens[0]).await?;
    alice.click("#extend-go").await?;
    alice
        .wait_for(
            "extended",
            "document.getElementById('extend-msg').textContent.startsWith('Extended')",
        )
        .await?;
    rig.capture(alice, "31b-chat-extended").await?;
    bob.wait_for(
        "the other page hears of it",
        &format!(
            "document.getElementById('chat-ttl').textContent !== {}",
            json!(before)
        ),
    )
    .await?;
    assert!(
        bob.text("#chat-ttl").await?.contains("days"),
        "a year away: {}",
        bob.text("#chat-ttl").await?
    );

    // A relay restart under an open chat: the conversation stays, a draft survives, and the lost
    // message is explained.
    keys(
        alice,
        "#compose-text",
        &format!("Before the restart{ENTER}"),
    )
    .await?;
    bob.wait_for(
        "message",
        "document.querySelector('#thread li.theirs .body')",
    )
    .await?;
    keys(bob, "#compose-text", "half-written reply").await?;
    rig.stop_relay().await;
    for page in [&*alice, &*bob] {
        wait_shown(page, "chat-conn").await?;
        assert!(page.text("#chat-conn").await?.contains("Reconnecting"));
        assert_eq!(page.js("return document.body.dataset.state").await?, "chat");
    }
    assert_eq!(
        thread(bob).await?["theirs"],
        json!(["Before the restart"]),
        "the conversation stays on screen"
    );
    rig.capture(bob, "32-chat-reconnecting").await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(value(bob, "compose-text").await?, "half-written reply");
    rig.start_relay().await?;
    for page in [&*alice, &*bob] {
        page.wait_for(
            "reconnected",
            "document.getElementById('chat-conn').hidden && !document.getElementById('chat-lost').hidden",
        )
        .await?;
        assert!(page.text("#chat-lost").await?.contains("relay restarted"));
    }
    assert_eq!(
        value(bob, "compose-text").await?,
        "half-written reply",
        "the draft survives"
    );
    rig.capture(bob, "33-chat-after-restart").await?;
    keys(bob, "#compose-text", ENTER).await?;
    alice
        .wait_for(
            "bob's draft, sent",
            "Array.from(document.querySelectorAll('#thread li.theirs .body')).some((e) => e.textContent === 'half-written reply')",
        )
        .await?;

    // Three wrong PINs lock the channel: a live countdown, Unlock disabled until it ends, and
    // the page's own attempts are not reported as someone else's afterwards.
    bob.click("#chat-lock").await?;
    bob.wait_screen("locked").await?;
    for left in ["2 tries left", "1 try left"] {
        unlock_with(bob, "9999").await?;
        bob.wait_for(
            left,
            &format!("document.getElementById('locked-msg').textContent.includes('{left}')"),
        )
        .await?;
    }
    unlock_with(bob, "9999").await?;
    bob.wait_for(
        "countdown",
        "!document.getElementById('locked-wait').hidden",
    )
    .await?;
    assert!(bob
        .text("#locked-msg")
        .await?
        .contains("not even with the right PIN"));
    assert_eq!(
        bob.js("return document.getElementById('unlock-go').disabled")
            .await?,
        true
    );
    let first = bob.text("#locked-wait").await?;
    assert!(first.starts_with("You can try again in 0:0"), "{first}");
    rig.capture(bob, "34-locked-countdown").await?;
    bob.wait_for(
        "the countdown moves",
        &format!(
            "document.getElementById('locked-wait').textContent !== {}",
            json!(first)
        ),
    )
    .await?;
    bob.wait_for(
        "the lock ends",
        "!document.getElementById('unlock-go').disabled",
    )
    .await?;
    unlock_with(bob, "1357").await?;
    bob.wait_screen("chat").await?;
    assert!(
        is_hidden(bob, "chat-warn").await?,
        "the page's own attempts"
    );

    // Erase and start over clears every field.
    bob.click("#chat-lock").await?;
    bob.wait_screen("locked").await?;
    bob.type_into("#unlock-pin", "13").await?;
    bob.click("#unlock-erase").await?;
    bob.wait_screen("entry").await?;
    for id in [
        "join-num",
        "join-pin",
        "create-pin",
        "new-pin",
        "pair-code",
        "pair-pin",
        "unlock-pin",
        "compose-text",
    ] {
        assert_eq!(value(bob, id).await?, "", "#{id} after erase");
    }
    assert_ne!(value(bob, "create-num").await?, number);
    assert!(session_keys(bob).await?.is_empty());
    rig.capture(bob, "35-entry-erased").await?;
    Ok(())
}

/// The client as a site that mounts the relay under `/stelgano` serves it: every page, asset,
/// WebSocket, look-up and the panic route resolve below the prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_client_works_under_a_prefix() -> TestResult {
    let Some(mut rig) = Rig::start_at(false, Some("/stelgano"), |c| {
        c.join_floor = Duration::ZERO;
        c.join_jitter = Duration::ZERO;
    })
    .await?
    else {
        return Ok(());
    };
    let mut alice = rig.browser("alice").await?;
    let mut bob = rig.browser("bob").await?;
    let outcome = under_prefix(&mut rig, &mut alice, &mut bob).await;
    rig.finish(vec![alice, bob], outcome, &[]).await
}

async fn under_prefix(rig: &mut Rig, alice: &mut Browser, bob: &mut Browser) -> TestResult {
    let base = rig.base.clone();
    let number = create_channel(alice, rig, "8642", false).await?;
    let code = alice.text("#pairing-code").await?;
    bob.goto(&format!("{base}/chat")).await?;
    bob.wait_screen("entry").await?;
    join_number(bob, &number, "9753").await?;
    bob.wait_screen("pair").await?;
    pair_with(bob, &code, "9753").await?;
    bob.wait_screen("chat").await?;
    keys(alice, "#compose-text", &format!("Under a prefix{ENTER}")).await?;
    bob.wait_for(
        "message",
        "document.querySelector('#thread li.theirs .body')?.textContent === 'Under a prefix'",
    )
    .await?;
    rig.capture(bob, "40-chat-under-prefix").await?;
    // Every request the pages made stayed below the prefix.
    let outside: Value = bob
        .js("return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname).filter(p => !p.startsWith('/stelgano/'))")
        .await?;
    assert_eq!(outside, json!([]), "requests outside the prefix");
    bob.click("#panic").await?;
    bob.wait_for("neutral page", "location.pathname === '/stelgano/gone'")
        .await?;
    Ok(())
}
