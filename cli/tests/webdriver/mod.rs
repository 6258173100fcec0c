//! Just enough of the W3C WebDriver protocol to drive Debian's headless
//! Chromium through `chromedriver`: a session, navigation, elements found
//! by CSS selector, clicks, typing, text, script and screenshots.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// The W3C key of an element reference in WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
}

pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session. Panics (the test
    /// fails) when either cannot start: the browser test never skips.
    pub async fn start() -> Browser {
        let chromedriver =
            std::env::var("HOOKFLOW_TEST_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("HOOKFLOW_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("chromedriver ({chromedriver}) does not start: {e}; run the tests with `make test`, which installs it"));
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer on {base}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]}
        }}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("POST /session")
            .json()
            .await
            .expect("session JSON");
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("Chromium did not start: {answer}"))
            .to_owned();
        Browser {
            driver,
            http,
            session: format!("{base}/session/{session}"),
        }
    }

    /// The command's value, or WebDriver's error (such as a stale element
    /// after the page re-rendered).
    async fn try_call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .expect("WebDriver request")
            .json()
            .await
            .expect("WebDriver JSON");
        if answer["value"]["error"].is_string() {
            return Err(answer["value"].clone());
        }
        Ok(answer["value"].clone())
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|error| panic!("WebDriver {path}: {error}"))
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Every element matching `css` now.
    pub async fn all(&self, css: &str) -> Vec<Element<'_>> {
        let found = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str())
                    .map(|id| Element {
                        browser: self,
                        id: id.to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching `css`, waiting up to `wait` for it.
    pub async fn wait_for(&self, css: &str, wait: Duration) -> Element<'_> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(element) = self.all(css).await.into_iter().next() {
                return element;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no element matches {css:?} after {wait:?}; the page:\n{}",
                    self.page().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's URL and HTML (the start of it), for failure messages.
    pub async fn page(&self) -> String {
        let page = self
            .execute("return location.href + '\\n' + document.documentElement.outerHTML.slice(0, 3000)")
            .await;
        page.as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the first element matching `css` has text containing
    /// `text`; an element replaced while it was read is looked up again.
    pub async fn wait_for_text(&self, css: &str, text: &str, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        let mut last = None;
        loop {
            if let Some(element) = self.all(css).await.into_iter().next() {
                if let Some(shown) = element.try_text().await {
                    if shown.contains(text) {
                        return shown;
                    }
                    last = Some(shown);
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "{css:?} shows {last:?}, not {text:?}, after {wait:?}; the page:\n{}",
                    self.page().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn execute(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Saves a PNG screenshot of the viewport.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let encoded = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("a base64 screenshot"))
            .expect("base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot folder");
        }
        std::fs::write(path, png).expect("screenshot written");
    }

    pub async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

impl Drop for Browser {
    /// Also when a test fails half-way: no chromedriver outlives its test.
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Element<'_> {
    fn path(&self, tail: &str) -> String {
        format!("/element/{}{tail}", self.id)
    }

    pub async fn click(&self) {
        self.browser
            .call(reqwest::Method::POST, &self.path("/click"), Some(json!({})))
            .await;
    }

    pub async fn send_keys(&self, text: &str) {
        self.browser
            .call(reqwest::Method::POST, &self.path("/value"), Some(json!({"text": text})))
            .await;
    }

    /// The element's text; `None` when it is gone from the page.
    pub async fn try_text(&self) -> Option<String> {
        let text = self
            .browser
            .try_call(reqwest::Method::GET, &self.path("/text"), None)
            .await
            .ok()?;
        text.as_str().map(str::to_owned)
    }
}
