//! Headless Chromium for the browser tests: finds chromium and chromedriver, runs chromedriver on a
//! free port, opens isolated browser profiles through WebDriver, reads their consoles, emulates
//! dark mode and runs axe-core in the page.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// How long a screen may take to appear (a PBKDF2 run, a join's time floor and a socket round
/// trip fit well inside it).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// The two binaries, or why the test cannot run.
pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

fn find_on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Chromium and chromedriver from `STELGANO_CHROMIUM` / `STELGANO_CHROMEDRIVER` or the PATH.
pub fn find_tools() -> Result<Tools, String> {
    let chromium = std::env::var_os("STELGANO_CHROMIUM")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| find_on_path(&["chromium", "chromium-browser", "google-chrome"]))
        .ok_or("chromium not found (Debian: apt-get install chromium)")?;
    let chromedriver = std::env::var_os("STELGANO_CHROMEDRIVER")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| find_on_path(&["chromedriver"]))
        .ok_or("chromedriver not found (Debian: apt-get install chromium-driver)")?;
    Ok(Tools {
        chromium,
        chromedriver,
    })
}

/// Where screenshots go: `STELGANO_ARTIFACTS`, else `target/browser-artifacts/`.
pub fn artifacts_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STELGANO_ARTIFACTS") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("browser-artifacts")
}

/// A running chromedriver, killed when dropped.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Driver {
    pub async fn start(tools: &Tools) -> TestResult<Driver> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("chromedriver did not start listening".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(driver)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Best effort: the process may already be gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver's log endpoint (not in the W3C spec, but served by chromedriver): returns and
/// drains the browser console entries recorded since the last call.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// chromedriver's Chrome DevTools passthrough (`goog/cdp/execute`), for what WebDriver has no
/// command for (emulating the dark colour scheme).
#[derive(Debug)]
struct Cdp {
    body: String,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.clone()))
    }
}

/// axe-core as installed by `npm install --prefix relay/tests/vendor axe-core@4` (see README).
pub fn axe_source() -> Option<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vendor/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(path).ok()
}

/// The two sizes every screen is captured at: a common phone and a laptop.
pub const SIZES: [(u32, u32); 2] = [(390, 844), (1280, 800)];

/// One isolated browser: its own profile directory, so no storage is shared with another.
pub struct Browser {
    pub name: &'static str,
    pub client: Client,
    _profile: tempfile::TempDir,
    pub console: Vec<String>,
}

impl Browser {
    pub async fn open(name: &'static str, tools: &Tools, driver: &Driver) -> TestResult<Browser> {
        let profile = tempfile::tempdir()?;
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--hide-scrollbars".to_owned(),
            "--window-size=1280,800".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tools.chromium.display().to_string(),
                "args": args,
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(caps) = caps else {
            return Err("capabilities must be an object".into());
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await?;
        Ok(Browser {
            name,
            client,
            _profile: profile,
            console: Vec::new(),
        })
    }

    pub async fn goto(&self, url: &str) -> TestResult {
        self.client.goto(url).await?;
        Ok(())
    }

    pub async fn js(&self, script: &str) -> TestResult<Value> {
        Ok(self.client.execute(script, vec![]).await?)
    }

    /// Polls `expr` (a JS expression) until it is truthy; `what` names the wait in the error.
    pub async fn wait_for(&self, what: &str, expr: &str) -> TestResult {
        let script = format!("return !!({expr});");
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if self.js(&script).await?.as_bool() == Some(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let state = self.js("return document.body.dataset.state || ''").await?;
                return Err(format!(
                    "{}: timed out waiting for {what} (screen {state})",
                    self.name
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_screen(&self, screen: &str) -> TestResult {
        self.wait_for(
            &format!("screen {screen}"),
            &format!("document.body.dataset.state === '{screen}'"),
        )
        .await
    }

    pub async fn click(&self, css: &str) -> TestResult {
        let done = async {
            self.client.find(Locator::Css(css)).await?.click().await?;
            TestResult::Ok(())
        };
        done.await
            .map_err(|e| format!("{}: click {css}: {e}", self.name).into())
    }

    pub async fn type_into(&self, css: &str, text: &str) -> TestResult {
        let done = async {
            let field = self.client.find(Locator::Css(css)).await?;
            field.clear().await?;
            field.send_keys(text).await?;
            TestResult::Ok(())
        };
        done.await
            .map_err(|e| format!("{}: type into {css}: {e}", self.name).into())
    }

    pub async fn text(&self, css: &str) -> TestResult<String> {
        let done =
            async { TestResult::Ok(self.client.find(Locator::Css(css)).await?.text().await?) };
        done.await
            .map_err(|e| format!("{}: text of {css}: {e}", self.name).into())
    }

    /// Switches the page between the light and the dark colour scheme.
    pub async fn color_scheme(&self, dark: bool) -> TestResult {
        let value = if dark { "dark" } else { "light" };
        let body = json!({
            "cmd": "Emulation.setEmulatedMedia",
            "params": { "features": [{ "name": "prefers-color-scheme", "value": value }] },
        });
        self.client
            .issue_cmd(Cdp {
                body: body.to_string(),
            })
            .await?;
        Ok(())
    }

    /// Runs axe-core (WCAG 2 A/AA rules) on the page as it is now and returns the serious and
    /// critical findings, one line each. The source is injected through WebDriver, which the
    /// page's CSP does not govern; the page itself still loads no script from elsewhere.
    pub async fn axe(&self, axe: &str, label: &str) -> TestResult<Vec<String>> {
        let script = format!(
            "{axe}\n;const done = arguments[arguments.length - 1];\
             axe.run(document, {{ runOnly: {{ type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }} }})\
             .then((r) => done(r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')\
             .map((v) => v.id + ' (' + v.impact + '): ' + v.nodes.map((n) => n.target.join(' ') + ' ' + (n.failureSummary || '').replace(/\\s+/g, ' ')).join(' | '))),\
             (e) => done(['axe failed: ' + e]));"
        );
        let found = self.client.execute_async(&script, vec![]).await?;
        let found = found
            .as_array()
            .ok_or_else(|| format!("{}: {label}: axe gave no result: {found}", self.name))?;
        Ok(found
            .iter()
            .map(|v| format!("{}: {label}: {}", self.name, v.as_str().unwrap_or("?")))
            .collect())
    }

    /// Saves the page at each of [`SIZES`] as `{name}-{width}.png`.
    pub async fn screenshots(&self, name: &str) -> TestResult {
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir)?;
        for (width, height) in SIZES {
            self.client.set_window_size(width, height).await?;
            // One animation frame so layout settles at the new width before the capture.
            self.client
                .execute_async(
                    "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
                    vec![],
                )
                .await?;
            // Grow the window by what the page overflows its viewport (capped), so the picture
            // shows the whole screen.
            let overflow = self
                .js("return document.documentElement.scrollHeight - window.innerHeight")
                .await?
                .as_i64()
                .unwrap_or(0);
            if overflow > 0 {
                let taller = (i64::from(height) + overflow).min(2400);
                self.client
                    .set_window_size(width, u32::try_from(taller).unwrap_or(height))
                    .await?;
            }
            let png = self.client.screenshot().await?;
            std::fs::write(dir.join(format!("{name}-{width}.png")), png)?;
        }
        Ok(())
    }

    /// Moves the console entries recorded so far into `self.console` (as "LEVEL message").
    pub async fn drain_console(&mut self) -> TestResult {
        let entries = self.client.issue_cmd(BrowserLog).await?;
        for entry in entries.as_array().into_iter().flatten() {
            let level = entry["level"].as_str().unwrap_or("?");
            let message = entry["message"].as_str().unwrap_or("");
            self.console.push(format!("{level} {message}"));
        }
        Ok(())
    }

    pub async fn close(self) -> TestResult {
        self.client.close().await?;
        Ok(())
    }
}
