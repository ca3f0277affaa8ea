//! The web page in real headless Chromium (Debian's `chromium` and `chromium-driver`),
//! driven over WebDriver against a real `wasp serve`: a run execution drawn with its
//! colours and inputs, a running one turning done without a reload, a kill from the
//! page, the TQL box and the Run dialog, and a large execution.
//!
//! WebDriver is plain HTTP and JSON, spoken here with the test suite's own HTTP client.
//! Without Chromium these tests say so and pass, unless `WASP_BROWSER_TESTS=required`
//! (CI sets it, after installing Chromium), when its absence fails them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::server::{Db, Server, each_store, sample_input};

/// W3C WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long to wait for the page to reach a state before failing.
const PATIENCE: Duration = Duration::from_secs(30);

fn binary(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// Held by the running browser: one at a time, so that two Chromiums never share the
/// machine's two cores with the server under test.
static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A headless Chromium session through ChromeDriver; both end when it is dropped.
struct Browser {
    _turn: std::sync::MutexGuard<'static, ()>,
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    profile: tempfile::TempDir,
    /// Where the browser saves downloads.
    downloads: tempfile::TempDir,
}

impl Browser {
    /// A browser, or `None` when Chromium is not installed and not required.
    fn start() -> Option<Self> {
        let chromium = binary("WASP_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = binary("WASP_CHROMEDRIVER", "/usr/bin/chromedriver");
        if !chromium.exists() || !chromedriver.exists() {
            let message = format!(
                "{} or {} is missing: apt-get install chromium chromium-driver \
                 (or set WASP_CHROMIUM and WASP_CHROMEDRIVER)",
                chromium.display(),
                chromedriver.display()
            );
            assert!(
                std::env::var("WASP_BROWSER_TESTS").as_deref() != Ok("required"),
                "browser tests are required: {message}"
            );
            eprintln!("skipping a browser test: {message}");
            return None;
        }
        let turn = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        while agent
            .get(format!("{base}/status"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_json::<Value>().ok())
            .is_none_or(|status| status["value"]["ready"] != true)
        {
            assert!(Instant::now() < deadline, "chromedriver never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut browser = Self {
            _turn: turn,
            driver,
            base,
            session: String::new(),
            agent,
            profile: tempfile::tempdir().expect("a profile directory"),
            downloads: tempfile::tempdir().expect("a download directory"),
        };
        let user_data = format!("--user-data-dir={}", browser.profile.path().display());
        let session = browser.command(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": ["--headless", "--no-sandbox", "--disable-gpu",
                             "--disable-background-networking", "--disable-component-update",
                             "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
                             "--window-size=1400,1000", user_data],
                    "prefs": {
                        "download.default_directory": browser.downloads.path(),
                        "download.prompt_for_download": false,
                    },
                },
            }}}),
        );
        browser.session = session["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        Some(browser)
    }

    /// Send a WebDriver command; its `value`, or a panic naming the command and error.
    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_command(method, path, body)
            .unwrap_or_else(|(status, answer)| panic!("{method} {path}: {status} {answer}"))
    }

    /// Send a WebDriver command; its `value`, or the status and answer of its failure.
    fn try_command(
        &self,
        method: &str,
        path: &str,
        body: Value,
    ) -> Result<Value, (ureq::http::StatusCode, Value)> {
        let url = format!("{}{path}", self.base);
        let response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self.agent.post(&url).send_json(&body),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let answer: Value = response
            .body_mut()
            .read_json()
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        if status.is_success() {
            Ok(answer["value"].clone())
        } else {
            Err((status, answer))
        }
    }

    fn session_command(&self, method: &str, path: &str, body: Value) -> Value {
        self.command(method, &format!("/session/{}{path}", self.session), body)
    }

    fn open(&self, url: &str) {
        self.session_command("POST", "/url", json!({ "url": url }));
    }

    /// Run `script` (a function body; `arguments` holds `args`) in the page.
    fn script(&self, script: &str, args: Value) -> Value {
        self.session_command(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
    }

    /// Wait until `script` returns something other than null or false; that value.
    fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let value = self.script(script, json!([]));
            if !value.is_null() && value != false {
                return value;
            }
            if Instant::now() > deadline {
                let page = self.script("return document.body.innerText", json!([]));
                panic!("the page never showed {what}; it shows:\n{page}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The element `css` selects, waiting for it to exist.
    fn element(&self, css: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let url = format!("{}/session/{}/element", self.base, self.session);
            let found = self
                .agent
                .post(&url)
                .send_json(json!({"using": "css selector", "value": css}))
                .ok()
                .filter(|r| r.status().is_success())
                .and_then(|mut r| r.body_mut().read_json::<Value>().ok());
            if let Some(id) = found.as_ref().and_then(|v| v["value"][ELEMENT].as_str()) {
                return id.to_owned();
            }
            if Instant::now() > deadline {
                let page = self.script("return document.body.innerText", json!([]));
                panic!("no element matches `{css}`; the page shows:\n{page}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Click what `css` selects, as a user would (a real pointer event at its centre).
    /// The page redraws a running execution as it re-reads it: an element found just
    /// before a redraw is found again.
    fn click(&self, css: &str) {
        for _ in 0..10 {
            let id = self.element(css);
            let path = format!("/session/{}/element/{id}/click", self.session);
            match self.try_command("POST", &path, json!({})) {
                Ok(_) => return,
                Err((_, answer)) if answer["value"]["error"] == "stale element reference" => {}
                Err((status, answer)) => panic!("POST {path}: {status} {answer}"),
            }
        }
        panic!("`{css}` was redrawn each time it was clicked");
    }

    /// Type `text` into the field `css` selects, after clearing it.
    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.session_command("POST", &format!("/element/{id}/clear"), json!({}));
        self.session_command(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    /// Press `key` (a WebDriver key code such as "\u{E007}" for Enter) where the focus is.
    fn press(&self, key: &str) {
        self.session_command(
            "POST",
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]}),
        );
    }

    /// The page's visible text in what `css` selects.
    fn text(&self, css: &str) -> String {
        let id = self.element(css);
        self.session_command("GET", &format!("/element/{id}/text"), json!({}))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The contents of the file the browser downloaded as `name`, once it is complete.
    fn downloaded(&self, name: &str) -> Vec<u8> {
        let path = self.downloads.path().join(name);
        let deadline = Instant::now() + PATIENCE;
        let mut last_size = None;
        loop {
            let present: Vec<_> = std::fs::read_dir(self.downloads.path())
                .expect("the download directory")
                .map(|e| e.expect("an entry").file_name())
                .collect();
            // Chromium writes a download into a temporary file (`.crdownload`, or a
            // hidden `.org.chromium.Chromium.*`) and renames it when done; once, in CI,
            // the name held an empty file before the rename. A download is whole when
            // nothing is being written and its size holds (none of these is empty).
            let writing = present.iter().any(|file| {
                let file = file.to_string_lossy();
                file.ends_with(".crdownload") || file.starts_with(".org.chromium.")
            });
            let size = std::fs::metadata(&path).map(|m| m.len()).ok();
            if !writing && size.is_some_and(|s| s > 0) && size == last_size {
                return std::fs::read(&path).expect("the download");
            }
            last_size = size;
            assert!(
                Instant::now() < deadline,
                "no whole download {name}; the directory holds {present:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Save a PNG screenshot of the page to `path`.
    fn screenshot(&self, path: &Path) {
        let png = self.session_command("GET", "/screenshot", json!({}));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 text"))
            .expect("a PNG in base64");
        assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::create_dir_all(path.parent().expect("a directory")).expect("directory");
        std::fs::write(path, bytes).expect("screenshot written");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = self.agent.delete(&url).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where screenshots go: `target/screenshots/`.
fn screenshot_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")),
        PathBuf::from,
    );
    target.join("screenshots").join(name)
}

fn server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("wasp.db"), &[]);
    (dir, server)
}

/// [`server`] on database `db` (none when it is not there).
fn server_on(db: Db) -> Option<(tempfile::TempDir, Server)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = db.in_dir(dir.path())?;
    let server = Server::start(&database, &[]);
    Some((dir, server))
}

/// The status each node of the page's graph shows, by node id.
const NODE_STATUSES: &str = "
    const nodes = document.querySelectorAll('#graph-svg .node');
    if (!nodes.length) return null;
    return Object.fromEntries([...nodes].map(n => [n.dataset.node, n.dataset.status]));";

/// The execution's status in the page's header.
const HEADER_STATUS: &str =
    "const s = document.querySelector('#facts .status'); return s && s.dataset.status;";

each_store!(an_ended_execution_is_drawn_in_its_colours_with_its_inputs_and_iterations);
#[allow(
    clippy::unwrap_used,
    reason = "a test, run on each store by each_store!"
)]
fn an_ended_execution_is_drawn_in_its_colours_with_its_inputs_and_iterations(db: Db) {
    let Some(browser) = Browser::start() else {
        return;
    };
    let Some((_dir, server)) = server_on(db) else {
        return;
    };
    let input = sample_input("phishing-triage");
    let (status, execution) = server.post(
        "/api/v1/playbooks/phishing-triage/run?wait=true&log_level=debug",
        &input,
    );
    assert_eq!(status, 200, "{execution}");
    let id = execution["id"].as_str().unwrap();
    browser.open(&server.url(&format!("/#/executions/{id}")));

    let shown = browser.wait_for("the graph", NODE_STATUSES);
    // Every node of the playbook is drawn; the executed ones in their status, the rest
    // as not executed.
    let graph = &server.get(&format!("/api/v1/executions/{id}")).1["graph"];
    assert_eq!(
        shown.as_object().unwrap().len(),
        graph["nodes"].as_array().unwrap().len(),
        "{shown}"
    );
    for node in execution["nodes"].as_array().unwrap() {
        let id = node["id"].as_str().unwrap();
        if node["status"] == "Succeeded" || node["status"] == "Failed" {
            assert_eq!(shown[id], node["status"], "node {id}: {shown}");
        }
    }
    assert_eq!(shown["lookup-failed"], "Skipped", "{shown}");
    assert_eq!(shown["trigger"], "Succeeded", "{shown}");
    // Colour and word together: a succeeded node is green and says so; one whose
    // branch was not taken is grey and says so.
    let look = |node: &str| {
        browser.script(
            "const g = document.querySelector(`[data-node='${arguments[0]}']`);
             return [getComputedStyle(g.querySelector('rect')).stroke,
                     g.querySelector('text.state').textContent];",
            json!([node]),
        )
    };
    assert_eq!(look("parse"), json!(["rgb(26, 127, 55)", "✔ Succeeded"]));
    // A for_each node says how many of its items succeeded.
    let lookup = execution["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "lookup")
        .unwrap();
    let items = lookup["iterations"].as_u64().unwrap();
    assert_eq!(lookup["succeeded"], items, "{lookup}");
    assert_eq!(
        look("lookup"),
        json!([
            "rgb(26, 127, 55)",
            format!("✔ Succeeded · {items} of {items}")
        ])
    );
    assert_eq!(
        look("lookup-failed"),
        json!(["rgb(129, 139, 152)", "○ Skipped"])
    );
    assert_eq!(
        browser.script(HEADER_STATUS, json!([])),
        execution["status"],
        "the header's status"
    );

    // A click on a node opens its details on the Inputs tab: the step's logged input.
    browser.click("[data-node='parse']");
    browser.wait_for(
        "the parse node's details",
        "const n = document.querySelector('#node-facts'); return n && n.textContent.includes('email-parse / parse');",
    );
    let raw = serde_json::from_str::<Value>(&input).unwrap()["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let first_line = raw.lines().next().unwrap();
    let inputs = browser.text("#tab-panel");
    assert!(inputs.contains(first_line), "{inputs}");
    browser.click("#tab-outputs");
    let outputs = browser.text("#tab-panel");
    assert!(outputs.contains("text_body"), "{outputs}");
    browser.screenshot(&screenshot_path("execution.png"));

    // The for_each node steps through its iterations, each with its own input.
    browser.click("[data-node='lookup']");
    let count = execution["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "lookup")
        .unwrap()["iterations"]
        .as_u64()
        .unwrap();
    assert!(count > 1, "the sample looks up several domains");
    assert_eq!(
        browser.text("#iteration-index"),
        format!("Iteration 1 of {count}")
    );
    browser.click("#tab-inputs");
    let first = browser.text("#tab-panel");
    browser.click("#iteration-next");
    assert_eq!(
        browser.text("#iteration-index"),
        format!("Iteration 2 of {count}")
    );
    let second = browser.text("#tab-panel");
    assert_ne!(first, second, "each iteration shows its own input");

    // The keyboard reaches the graph too: Tab from the zoom buttons lands on one node
    // (the selected one), the arrows move along the edges, Enter opens a node.
    browser.script("document.querySelector('#zoom-fit').focus()", json!([]));
    browser.press("\u{E004}");
    let focused = browser.script("return document.activeElement.dataset.node", json!([]));
    assert_eq!(focused, "lookup", "Tab lands on the selected node");
    browser.press("\u{E012}");
    browser.press("\u{E012}");
    let focused = browser.script("return document.activeElement.dataset.node", json!([]));
    assert_eq!(focused, "parse", "two steps left along the edges");
    browser.press("\u{E014}");
    browser.press("\u{E015}");
    let focused = browser.script("return document.activeElement.dataset.node", json!([]));
    assert_eq!(
        focused, "spoofing",
        "right to the first child, down to its sibling"
    );
    browser.press("\u{E007}");
    browser.wait_for(
        "the spoofing node's details",
        "return document.querySelector('#node-facts').textContent.includes('switch / route');",
    );
}

#[test]
fn inputs_not_captured_at_info_are_explained() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let (_dir, server) = server();
    let (status, execution) = server.post(
        "/api/v1/playbooks/phishing-triage/run?wait=true&log_level=info",
        &sample_input("phishing-triage"),
    );
    assert_eq!(status, 200, "{execution}");
    let id = execution["id"].as_str().unwrap();
    browser.open(&server.url(&format!("/#/executions/{id}?node=iocs")));
    let why = browser.wait_for(
        "why the inputs are missing",
        "const p = document.querySelector('[data-empty=\"not-captured\"]'); return p && p.textContent;",
    );
    let why = why.as_str().unwrap();
    assert!(
        why.contains("log level INFO") && why.contains("DEBUG"),
        "{why}"
    );
    // Nothing is offered that needs what INFO did not keep (issue 23): no replay of a
    // step whose input was not logged, no download of OS logs that were not kept.
    let offered = browser.script(
        "return [!!document.querySelector('#replay'), !!document.querySelector('#os-logs')]",
        json!([]),
    );
    assert_eq!(offered, json!([false, false]));
}

/// A playbook of two steps that sleep `ms` milliseconds each (or a first that spins
/// forever, without), then a last one.
fn slow_playbook(server: &Server, id: &str, ms: Option<u64>) {
    let (wait, then) = match ms {
        Some(ms) => (
            format!("{{ app: chaos, action: sleep, input: {{ ms: {ms} }} }}"),
            format!("{{ app: chaos, action: sleep, input: {{ ms: {ms} }} }}"),
        ),
        None => (
            "{ app: chaos, action: spin, timeout: 1h, input: {} }".to_owned(),
            "{ app: chaos, action: sleep, input: { ms: 1 } }".to_owned(),
        ),
    };
    let yaml = format!(
        "id: {id}\nname: {id}\nlog_level: debug\nmax_runtime: 5m\ntrigger: {{ type: manual }}\n\
         nodes:\n  wait: {wait}\n  then: {then}\n  after:\n    app: transform\n    \
         action: join\n    input: {{ items: [\"done\"], separator: \" \" }}\n\
         edges:\n  - wait -> then\n  - then -> after\n"
    );
    let (status, created) = server.post("/api/v1/playbooks", &yaml);
    assert_eq!(status, 201, "{created}");
}

#[test]
fn a_running_execution_turns_done_on_the_page_without_a_reload() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let (_dir, server) = server();
    slow_playbook(&server, "slow", Some(2_500));
    let (status, started) = server.post("/api/v1/playbooks/slow/run", "{}");
    assert_eq!(status, 202, "{started}");
    let id = started["execution_id"].as_str().unwrap();
    browser.open(&server.url(&format!("/#/executions/{id}")));
    browser.wait_for(
        "the sleeping node running",
        "const n = document.querySelector(\"[data-node='wait']\"); return n && n.dataset.status === 'Running';",
    );
    assert_eq!(browser.script(HEADER_STATUS, json!([])), "Running");
    assert_eq!(
        browser.script(
            "return document.querySelector(\"[data-node='after']\").dataset.status",
            json!([])
        ),
        "Pending"
    );
    // A mark on this page: a reload would lose it.
    browser.script("window.waspMark = 'same page'", json!([]));

    // The first step's end and the second's start arrive as events.
    browser.wait_for(
        "the first step done and the second running",
        "const s = (id) => document.querySelector(`[data-node='${id}']`).dataset.status; \
         return s('wait') === 'Succeeded' && s('then') === 'Running' || null;",
    );
    assert_eq!(browser.script(HEADER_STATUS, json!([])), "Running");
    // What the finished step saw and gave is there while the execution runs (issue 23:
    // it said "still running…" until the end).
    browser.click("[data-node='wait']");
    browser.click("#tab-inputs");
    let inputs = browser.wait_for(
        "the finished step's input",
        "const p = document.querySelector('#tab-panel pre'); return p && p.textContent;",
    );
    assert!(
        inputs.as_str().unwrap().contains("\"ms\": 2500"),
        "{inputs}"
    );
    browser.click("#tab-logs");
    browser.wait_for(
        "the logs of the steps that ended",
        "return document.querySelector('#logs-running') !== null || null;",
    );
    browser.screenshot(&screenshot_path("running-finished-step.png"));
    assert_eq!(browser.script(HEADER_STATUS, json!([])), "Running");

    browser.wait_for(
        "the execution completed",
        "const s = document.querySelector('#facts .status'); return s && s.dataset.status === 'Completed';",
    );
    let shown = browser.script(NODE_STATUSES, json!([]));
    assert_eq!(shown["wait"], "Succeeded", "{shown}");
    assert_eq!(shown["after"], "Succeeded", "{shown}");
    assert_eq!(
        browser.script("return window.waspMark", json!([])),
        "same page"
    );
}

#[test]
fn a_running_execution_is_killed_from_the_page_after_a_confirmation() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let (_dir, server) = server();
    slow_playbook(&server, "forever", None);
    let (status, started) = server.post("/api/v1/playbooks/forever/run", "{}");
    assert_eq!(status, 202, "{started}");
    let id = started["execution_id"].as_str().unwrap();
    browser.open(&server.url(&format!("/#/executions/{id}")));

    // No is no.
    browser.click("#kill");
    browser.wait_for(
        "the confirmation",
        "return document.querySelector('#confirm-dialog').open",
    );
    browser.click("#confirm-no");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        server.get(&format!("/api/v1/executions/{id}")).1["status"],
        "Running"
    );

    browser.click("#kill");
    browser.wait_for(
        "the confirmation",
        "return document.querySelector('#confirm-dialog').open",
    );
    browser.click("#confirm-yes");
    browser.wait_for(
        "the execution killed",
        "const s = document.querySelector('#facts .status'); return s && s.dataset.status === 'Killed';",
    );
    let execution = server.wait_for_end(id);
    assert_eq!(execution["status"], "Killed", "{execution}");
    let shown = browser.script(NODE_STATUSES, json!([]));
    assert_eq!(shown["wait"], "Killed", "{shown}");
    // The steps the kill stopped before they started are grey, not red (issue 23).
    assert_eq!(shown["then"], "Not started", "{shown}");
    let look = browser.script(
        "const g = document.querySelector(\"[data-node='then']\"); \
         return [getComputedStyle(g.querySelector('rect')).stroke, g.querySelector('text.state').textContent];",
        json!([]),
    );
    assert_eq!(look, json!(["rgb(129, 139, 152)", "○ Not started"]));
    browser.screenshot(&screenshot_path("killed-not-started.png"));
}

each_store!(the_list_filters_by_tql_with_inline_errors_and_runs_a_playbook);
#[allow(
    clippy::unwrap_used,
    reason = "a test, run on each store by each_store!"
)]
fn the_list_filters_by_tql_with_inline_errors_and_runs_a_playbook(db: Db) {
    let Some(browser) = Browser::start() else {
        return;
    };
    let Some((_dir, server)) = server_on(db) else {
        return;
    };
    let (status, _) = server.post(
        "/api/v1/playbooks/ip-enrichment/run?wait=true",
        &sample_input("ip-enrichment"),
    );
    assert_eq!(status, 200);
    browser.open(&server.url("/"));
    browser.wait_for(
        "an execution in the list",
        "return document.querySelectorAll('#executions tbody tr[data-id]').length === 1",
    );

    // Each playbook says what starts it.
    let trigger = browser.script(
        "return document.querySelector(\"button[data-playbook='severe-alert']\").closest('tr').querySelector('.trigger').textContent",
        json!([]),
    );
    assert_eq!(
        trigger,
        "event when type = \"alert\" AND severity >= 7 AND ips IS NOT NULL"
    );

    browser.type_into("#tql", "status = ");
    browser.press("\u{E007}");
    let error = browser.wait_for(
        "the parser's error",
        "const e = document.querySelector('#tql-error'); return e && e.textContent || null;",
    );
    let error = error.as_str().unwrap();
    assert!(
        error.contains("position") || error.contains("column"),
        "{error}"
    );
    assert_eq!(
        browser.script(
            "return document.querySelector('#tql').getAttribute('aria-invalid')",
            json!([])
        ),
        "true"
    );

    browser.type_into("#tql", "playbookXid = \"phishing-triage\"");
    browser.press("\u{E007}");
    browser.wait_for(
        "no match",
        "return document.querySelector('#tql-error').textContent === '' && \
         document.querySelectorAll('#executions tbody tr[data-id]').length === 0",
    );

    // Run from the page: a bad payload is refused in the dialog, a good one runs.
    browser.click("button[data-playbook='ip-enrichment']");
    browser.type_into("#run-payload", "{not json");
    browser.click("#run-submit");
    let error = browser.wait_for(
        "the payload's error",
        "return document.querySelector('#run-error').textContent || null",
    );
    assert!(error.as_str().unwrap().contains("not JSON"), "{error}");
    browser.type_into("#run-payload", &sample_input("ip-enrichment"));
    browser.click("#run-submit");
    let id = browser.wait_for(
        "the new execution's page",
        "const m = location.hash.match(/^#\\/executions\\/([^?]+)/); return m && m[1];",
    );
    let execution = server.wait_for_end(id.as_str().unwrap());
    assert_eq!(execution["playbook_id"], "ip-enrichment");
    assert_eq!(execution["trigger_type"], "MANUAL");
    browser.wait_for(
        "the new execution ended",
        "const s = document.querySelector('#facts .status'); return s && s.dataset.status !== 'Running';",
    );
}

#[test]
fn a_large_execution_stays_usable() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let (_dir, server) = server();
    // 200 nodes: a flood step (10,000 log lines, 5 MB of output) and 199 small steps in
    // ten layers after it.
    let mut yaml = String::from(
        "id: large\nname: Large\nlog_level: debug\nmax_runtime: 5m\n\
         trigger: { type: manual }\nnodes:\n  \
         flood: { app: chaos, action: flood, input: { lines: 10000, bytes: 5000000 } }\n",
    );
    let mut edges = String::from("edges:\n");
    for i in 1..200 {
        yaml.push_str(&format!(
            "  n{i}: {{ app: transform, action: count, input: {{ items: [1, 2, {i}] }} }}\n"
        ));
        let parent = if i <= 20 {
            "flood".to_owned()
        } else {
            format!("n{}", i - 20)
        };
        edges.push_str(&format!("  - {parent} -> n{i}\n"));
    }
    yaml.push_str(&edges);
    let (status, created) = server.post("/api/v1/playbooks", &yaml);
    assert_eq!(status, 201, "{created}");
    let (status, execution) = server.post("/api/v1/playbooks/large/run?wait=true", "{}");
    assert_eq!(status, 200, "{}", &execution.to_string()[..500]);
    assert_eq!(execution["status"], "Completed");
    let id = execution["id"].as_str().unwrap();

    browser.open(&server.url(&format!("/#/executions/{id}?node=n150")));
    let shown = browser.wait_for("the graph", NODE_STATUSES);
    let shown = shown.as_object().unwrap();
    assert_eq!(shown.len(), 201, "200 steps and the trigger");
    assert!(shown.values().all(|s| s == "Succeeded"), "{shown:?}");
    // Fit never shrinks the words past reading (issue 23: tiny text on a 26-node
    // graph): the part around the selected node shows, and the page says so.
    browser.click("#zoom-fit");
    let text_px = "const t = document.querySelector(\"[data-node='n150'] text\").getBoundingClientRect(); \
         const box = document.querySelector('#graph-svg').getBoundingClientRect(); \
         return [t.height, t.left >= box.left && t.right <= box.right && t.top >= box.top && t.bottom <= box.bottom];";
    let (height, inside): (f64, bool) =
        serde_json::from_value(browser.script(text_px, json!([]))).unwrap();
    assert!(height >= 9.0, "text {height}px high");
    assert!(inside, "the selected node is in view");
    assert!(
        browser
            .text("#graph-hint")
            .starts_with("Part of the graph (201 nodes) is shown"),
        "{}",
        browser.text("#graph-hint")
    );
    browser.screenshot(&screenshot_path("large-graph-fit.png"));
    // (Out of view now: selected as a keyboard user would, through the graph.)
    browser.script(
        "document.querySelector(\"[data-node='flood']\").dispatchEvent(new MouseEvent('click'))",
        json!([]),
    );

    // The 5 MB output: its head, and the whole as a download.
    browser.click("#tab-outputs");
    let notice = browser.text("#truncated");
    assert!(
        notice.contains("Showing the first") && notice.contains("4.8 MB"),
        "{notice}"
    );
    let shown_bytes = browser.script(
        "return document.querySelector('#tab-panel pre').textContent.length",
        json!([]),
    );
    assert!(shown_bytes.as_u64().unwrap() < 200_000, "{shown_bytes}");

    browser.click("#download-whole");
    let whole: Value =
        serde_json::from_slice(&browser.downloaded(&format!("{id}-flood-output.json")))
            .expect("the output as JSON");
    assert_eq!(whole["data"].as_str().map(str::len), Some(5_000_000));

    // 10,000 log lines: a page of them, a search, the count of all, and all as CSV.
    browser.click("#tab-logs");
    browser.wait_for(
        "the first page of log lines",
        "const c = document.querySelector('#log-count'); return c && c.textContent.includes('of 10000') || null",
    );
    assert_eq!(
        browser.script(
            "return document.querySelectorAll('#logs tbody tr').length",
            json!([])
        ),
        500
    );
    browser.click("#log-csv");
    let csv = String::from_utf8(browser.downloaded(&format!("{id}-flood-logs.csv"))).unwrap();
    assert_eq!(csv.lines().count(), 10_001, "a header and every line");
    assert!(
        csv.lines()
            .last()
            .unwrap()
            .contains("flood line 10000 of 10000")
    );
    browser.type_into("#log-search", "line 9999 of");
    browser.wait_for(
        "the searched line",
        "const rows = document.querySelectorAll('#logs tbody tr'); \
         return rows.length === 1 && rows[0].textContent.includes('flood line 9999 of 10000');",
    );
    browser.screenshot(&screenshot_path("large-execution.png"));
    // A search with no hit says so, with the term (issue 23: it said "No log lines at
    // this level").
    browser.type_into("#log-search", "line 9999 of nowhere");
    let said = browser.wait_for(
        "no hit",
        "const c = document.querySelector('#log-count'); \
         return c && c.textContent.startsWith('No log line') && c.textContent;",
    );
    assert_eq!(
        said,
        "No log line at TRACE or above matches “line 9999 of nowhere”."
    );

    // Every step's stdout and stderr, zipped, from the OS Logs tab.
    browser.click("#tab-oslogs");
    browser.click("#download-os-logs");
    let zip = browser.downloaded(&format!("{id}-os-logs.zip"));
    assert!(zip.starts_with(b"PK"), "a ZIP archive");
}

#[test]
fn a_step_is_replayed_and_a_child_execution_opened_from_the_page() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let (_dir, server) = server();
    let (status, parent) = server.post(
        "/api/v1/playbooks/parent-child/run?wait=true",
        &sample_input("parent-child"),
    );
    assert_eq!(status, 200, "{parent}");
    let parent_id = parent["id"].as_str().unwrap();
    let child_id = parent["children"][0]["id"].as_str().unwrap();

    // The sub-playbook node leads to the child execution.
    browser.open(&server.url(&format!("/#/executions/{parent_id}?node=enrich")));
    browser.click("#open-child");
    browser.wait_for(
        "the child execution",
        &format!(
            "return location.hash.startsWith('#/executions/{child_id}') && \
             document.querySelector('#facts').textContent.includes('ip-enrichment')"
        ),
    );
    // … and back to its parent.
    assert!(browser.text("#facts").contains(parent_id));

    // Replay runs the step again with its logged input, as a new execution linked to
    // the original.
    browser.open(&server.url(&format!("/#/executions/{parent_id}?node=extract")));
    browser.click("#replay");
    let replay_id = browser.wait_for(
        "the replay's page",
        &format!(
            "const m = location.hash.match(/^#\\/executions\\/([^?]+)/); \
             return m && m[1] !== '{parent_id}' && m[1];"
        ),
    );
    let replay = server.wait_for_end(replay_id.as_str().unwrap());
    assert_eq!(replay["replay_of"], parent_id, "{replay}");
    assert_eq!(replay["status"], "Completed", "{replay}");
    browser.wait_for(
        "the replay's link to the original",
        &format!(
            "return document.querySelector('#facts').textContent.includes('Replay of{parent_id}')"
        ),
    );
}

#[test]
fn the_page_asks_for_the_token_of_a_server_that_has_one() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(
        &dir.path().join("wasp.db"),
        &["--token", "page-token-0123456789"],
    );
    browser.open(&server.url("/"));
    browser.wait_for(
        "the token dialog",
        "return document.querySelector('#token-dialog').open",
    );
    browser.type_into("#token-input", "page-token-0123456789");
    browser.press("\u{E007}");
    browser.wait_for(
        "the playbooks, read with the token",
        "return document.querySelectorAll('#playbooks button.run').length > 0",
    );
}

#[test]
fn the_page_is_served_without_the_token_and_loads_nothing_from_elsewhere() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(
        &dir.path().join("wasp.db"),
        &["--token", "page-token-0123456789"],
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for (path, media_type) in [
        ("/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
    ] {
        let mut response = agent.get(server.url(path)).call().expect("answered");
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(media_type), "{path}");
        let policy = header("content-security-policy");
        assert!(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"));
        assert_eq!(header("x-content-type-options"), "nosniff");
        let body = response.body_mut().read_to_string().expect("text");
        // Nothing from another origin: no absolute URL anywhere in the page's files but
        // SVG's namespace name (an identifier, never fetched).
        let body = body.replace("\"http://www.w3.org/2000/svg\"", "");
        for scheme in ["http://", "https://", "//cdn", "@import"] {
            assert!(!body.contains(scheme), "{path} refers to {scheme}");
        }
    }
    let (status, _) = {
        let mut response = agent
            .get(server.url("/ui/secrets"))
            .call()
            .expect("answered");
        (response.status(), response.body_mut().read_to_string())
    };
    assert_eq!(status, 404);
    // The data still needs the token.
    let response = agent
        .get(server.url("/api/v1/playbooks"))
        .call()
        .expect("answered");
    assert_eq!(response.status(), 401);
}

#[test]
fn a_partially_failed_execution_is_orange_and_its_failed_step_red_with_its_message() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let (_dir, server) = server();
    let (status, execution) = server.post(
        "/api/v1/playbooks/partial-failure/run?wait=true",
        &sample_input("partial-failure"),
    );
    assert_eq!(status, 200, "{execution}");
    assert_eq!(execution["status"], "Partially Failed");
    let id = execution["id"].as_str().unwrap();
    browser.open(&server.url(&format!("/#/executions/{id}?node=classify")));
    let header = browser.wait_for(
        "the header's status",
        "const s = document.querySelector('#facts .status'); \
         return s && [s.dataset.status, getComputedStyle(s).color];",
    );
    assert_eq!(header, json!(["Partially Failed", "rgb(188, 76, 0)"]));
    // The playbook's declared result is in the header.
    let result: Value = serde_json::from_str(&browser.text("#result")).unwrap();
    assert_eq!(result, execution["output"]);
    assert_eq!(result["category"], "unknown", "{result}");
    assert!(
        result["ticket"]
            .as_str()
            .unwrap()
            .starts_with("Defanged for the ticket:")
    );
    browser.screenshot(&screenshot_path("partially-failed-with-output.png"));
    let shown = browser.wait_for("the graph", NODE_STATUSES);
    assert_eq!(shown["classify"], "Failed", "{shown}");
    assert_eq!(shown["ticket"], "Succeeded", "{shown}");
    let stroke = browser.script(
        "return getComputedStyle(document.querySelector(\"[data-node='classify'] rect\")).stroke",
        json!([]),
    );
    assert_eq!(stroke, "rgb(207, 34, 46)");
    let facts = browser.text("#node-facts");
    assert!(
        facts.contains("Message"),
        "the failure's message is shown: {facts}"
    );
}
