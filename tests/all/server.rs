//! `wasp serve` as a process on `127.0.0.1:0`, driven over real HTTP: the native API,
//! the ThreatConnect view with the seed's own queries, kill, bad input, the token, and
//! a restart after SIGKILL.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{cache_dir, example_apps_dir, generated};

/// The database a test's server keeps its records in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Db {
    Sqlite,
    Postgres,
}

impl Db {
    /// A new database for one test: a file in `dir`, or a new database of the test
    /// process's PostgreSQL cluster (`None` when PostgreSQL is not installed: the test
    /// is skipped, and says so, unless `WASP_POSTGRES=required`).
    pub(crate) fn in_dir(self, dir: &Path) -> Option<std::path::PathBuf> {
        match self {
            Db::Sqlite => Some(dir.join("wasp.db")),
            Db::Postgres => crate::postgres::database().map(std::path::PathBuf::from),
        }
    }
}

/// Test `$name(db: Db)` on each store: `$name::sqlite` and `$name::postgres`.
macro_rules! each_store {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(super::Db::Sqlite);
            }

            #[test]
            fn postgres() {
                super::$name(super::Db::Postgres);
            }
        }
    };
}
pub(crate) use each_store;

/// A running `wasp serve`, killed when dropped.
pub(crate) struct Server {
    child: Child,
    base: String,
    pub(crate) agent: ureq::Agent,
    token: Option<String>,
    /// What the server wrote to stderr, shown when a test fails.
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// Serve the sample playbooks, storing in `db`, with `extra` arguments.
    pub(crate) fn start(db: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(db, extra, &[])
    }

    /// A server whose process also has the environment variables `env`.
    pub(crate) fn start_with_env(db: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::launch(
            Command::new(env!("CARGO_BIN_EXE_wasp")),
            db,
            extra,
            env,
            true,
        )
    }

    /// A server as soon as it listens, before its apps and playbooks are loaded.
    pub(crate) fn start_unready(db: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::launch(
            Command::new(env!("CARGO_BIN_EXE_wasp")),
            db,
            extra,
            env,
            false,
        )
    }

    /// A server that may open at most `limit` files (soft and hard limit alike, so
    /// that it cannot raise its own).
    pub(crate) fn start_with_descriptor_limit(db: &Path, extra: &[&str], limit: u32) -> Self {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_wasp"));
        Self::launch(command, db, extra, &[], true)
    }

    fn launch(
        mut command: Command,
        db: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        ready: bool,
    ) -> Self {
        let playbooks = concat!(env!("CARGO_MANIFEST_DIR"), "/../example-apps/playbooks");
        let assets = format!("{playbooks}/assets.yaml");
        let mut child = command
            .args(["serve", "--addr", "127.0.0.1:0", "--playbooks", playbooks])
            .args(["--assets", &assets, "--db"])
            .arg(db)
            .args(extra)
            .env("WASP_APPS", example_apps_dir())
            .env("WASP_CACHE_DIR", cache_dir())
            .env_remove("WASP_API_TOKEN")
            .env_remove("WASP_LOG")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wasp serve starts");
        // The server names its address on stderr once it listens.
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr is piped"));
        let mut seen = String::new();
        let base = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).expect("the server answers") == 0 {
                panic!("wasp serve ended before listening: {seen}");
            }
            seen.push_str(&line);
            if let Some(rest) = line.strip_prefix("wasp serving on ") {
                break rest
                    .split_whitespace()
                    .next()
                    .expect("the server answers")
                    .to_owned();
            }
        };
        // It answers while it loads its apps and playbooks; most tests want them loaded.
        if ready {
            loop {
                let mut line = String::new();
                if stderr.read_line(&mut line).expect("the server answers") == 0 {
                    panic!("wasp serve ended before it was ready: {seen}");
                }
                seen.push_str(&line);
                if line.starts_with("wasp ready: ") {
                    break;
                }
            }
        }
        // Keep draining stderr so that the server never blocks on a full pipe.
        let log = std::sync::Arc::new(std::sync::Mutex::new(seen));
        let kept = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let token = extra
            .windows(2)
            .find(|w| w[0] == "--token")
            .map(|w| w[1].to_owned());
        Self {
            child,
            base,
            agent,
            token,
            log,
        }
    }

    /// The server's exit, when it exits within `within`.
    pub(crate) fn wait_for_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// What the server wrote to stderr so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `GET path`, the body as bytes.
    pub(crate) fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let mut response = self
            .auth(self.agent.get(self.url(path)))
            .call()
            .expect("the server answers");
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .expect("the server answers");
        (status, body)
    }

    /// `method path` with a body.
    pub(crate) fn send(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("Content-Type", "application/json");
        let request = match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        };
        let response = self
            .agent
            .run(request.body(body.to_owned()).expect("a request"))
            .expect("the server answers");
        read(response)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn auth<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    pub(crate) fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .auth(self.agent.get(self.url(path)))
            .call()
            .expect("the server answers");
        read(response)
    }

    fn options(&self, path: &str) -> (u16, Value) {
        let response = self
            .auth(self.agent.options(self.url(path)))
            .call()
            .expect("the server answers");
        read(response)
    }

    pub(crate) fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let response = self
            .auth(self.agent.post(self.url(path)))
            .content_type("application/json")
            .send(body)
            .expect("the server answers");
        read(response)
    }

    /// Wait until execution `id` is no longer Queued or Running.
    pub(crate) fn wait_for_end(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, execution) = self.get(&format!("/api/v1/executions/{id}"));
            let waiting = matches!(execution["status"].as_str(), Some("Running" | "Queued"));
            if !waiting || Instant::now() > deadline {
                return execution;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!("--- wasp serve's stderr ---\n{log}--- end ---");
        }
    }
}

pub(crate) fn read(mut response: ureq::http::Response<ureq::Body>) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .expect("the server answers");
    let value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("status {status}: the body is not JSON ({e}): {body}"));
    (status, value)
}

/// `wasp keys` with `args` on `db`: what it printed.
pub(crate) fn keys(db: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .arg("keys")
        .args(args)
        .arg("--db")
        .arg(db)
        .output()
        .expect("wasp keys runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("text")
        .trim()
        .to_owned()
}

pub(crate) fn sample_input(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../example-apps/playbooks/{name}.input.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("the server answers")
}

each_store!(runs_are_stored_and_served_by_the_native_api_and_the_threatconnect_view);
#[allow(
    clippy::unwrap_used,
    reason = "a test, run on each store by each_store!"
)]
fn runs_are_stored_and_served_by_the_native_api_and_the_threatconnect_view(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = db.in_dir(dir.path()) else {
        return;
    };
    let server = Server::start(&db, &[]);

    let (status, playbooks) = server.get("/api/v1/playbooks");
    assert_eq!(status, 200);
    let xids: Vec<&str> = playbooks["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["xid"].as_str().unwrap())
        .collect();
    // `polyglot` needs the Python and JavaScript apps, built where their tools are.
    let polyglot = crate::common::example_app("defang").is_file();
    let expected: Vec<&str> = [
        "ip-enrichment",
        "parent-child",
        "partial-failure",
        "phishing-triage",
        "polyglot",
        "runaway",
        "severe-alert",
    ]
    .into_iter()
    .filter(|xid| *xid != "polyglot" || polyglot)
    .collect();
    assert_eq!(xids, expected);
    let (status, playbook) = server.get("/api/v1/playbooks/phishing-triage");
    assert_eq!(status, 200);
    assert!(playbook["id"].as_str().unwrap().starts_with("pb_"));
    // Seed 003's record: the file as `definition`, `steps` in order, where it came from.
    assert_eq!(
        playbook["definition"]["nodes"]["parse"]["app"],
        "email-parse"
    );
    assert_eq!(
        (
            &playbook["steps"][0]["id"],
            &playbook["steps"][0]["app"],
            &playbook["steps"][0]["type"]
        ),
        (&json!("parse"), &json!("email-parse"), &json!("app"))
    );
    assert_eq!(
        playbook["steps"][1]["after"][0],
        json!({"step": "parse", "on": "success"})
    );
    assert_eq!(
        (&playbook["source_type"], &playbook["deleted_by"]),
        (&json!("server"), &Value::Null)
    );
    // The same record at seed 003's path.
    let (status, same) = server.get("/api/v1/soc/playbooks/phishing-triage");
    assert_eq!((status, &same["id"]), (200, &playbook["id"]));
    let playbook_num = playbook["num"].as_i64().unwrap();
    // The record is reachable by its string id and its number too.
    let by_id = server.get(&format!(
        "/api/v1/playbooks/{}",
        playbook["id"].as_str().unwrap()
    ));
    assert_eq!(by_id.1["xid"], "phishing-triage");
    assert_eq!(
        server.get(&format!("/api/v1/playbooks/{playbook_num}")).1["xid"],
        "phishing-triage"
    );

    let (status, execution) = server.post(
        "/api/v1/playbooks/phishing-triage/run?wait=true",
        &sample_input("phishing-triage"),
    );
    assert_eq!(status, 200, "{execution}");
    assert_eq!(execution["status"], "Completed");
    let id = execution["id"].as_str().unwrap().to_owned();
    let num = execution["num"].as_i64().unwrap();

    let (status, stored) = server.get(&format!("/api/v1/executions/{id}"));
    assert_eq!(status, 200);
    assert_eq!(stored["status"], "Completed");
    assert_eq!(
        stored["nodes"][5]["output"],
        json!({"values": ["m365-verify.top"]})
    );
    assert!(
        stored["graph"]["edges"]
            .as_array()
            .unwrap()
            .contains(&json!({"from": "malicious", "to": "block-list", "on": "true"})),
        "{}",
        stored["graph"]
    );
    assert_eq!(
        server.get(&format!("/api/v1/executions/{num}")).1["id"],
        id.as_str()
    );

    // The seed's queries, verbatim (URL-encoded as the seed shows them).
    let (status, page) = server
        .get("/api/v3/playbook/executions?tql=completedTime%20%3E%20%22NOW()%20-%201%20HOUR%22");
    assert_eq!(status, 200);
    assert_eq!(page["status"], "Success");
    assert_eq!(
        (&page["countSuccess"], &page["countFailure"]),
        (&json!(1), &json!(0))
    );
    let record = &page["data"][0];
    assert_eq!(record["id"], num);
    assert_eq!(record["playbookId"], playbook_num);
    assert_eq!(record["playbookXid"], "phishing-triage");
    assert_eq!(record["logLevel"], "DEBUG");
    assert_eq!(record["status"], "Completed");
    for time in ["queueTime", "startTime", "completedTime"] {
        let text = record[time].as_str().unwrap();
        assert!(text.ends_with('Z') && text.len() == 20, "{time}: {text}");
    }
    let (_, page) =
        server.get("/api/v3/playbook/executions?tql=playbookXid%20%3D%20%22GiTVUWaN%22");
    assert_eq!(page["data"], json!([]));
    let (_, page) = server.get(&format!(
        "/api/v3/playbook/executions?tql=playbookId%20%3D%20{playbook_num}"
    ));
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let (_, page) = server.get(&format!("/api/v3/playbook/executions/{num}"));
    assert_eq!(page["data"]["playbookXid"], "phishing-triage");

    // A partial failure counts as a failure; paging links and the total.
    let (status, _) = server.post(
        "/api/v1/playbooks/partial-failure/run?wait=true",
        &sample_input("partial-failure"),
    );
    assert_eq!(status, 200);
    let (_, page) = server.get("/api/v3/playbook/executions?resultLimit=1&count=true");
    // The counts are of the executions in the answer, as ThreatConnect documents them.
    assert_eq!(
        (&page["countSuccess"], &page["countFailure"]),
        (&json!(0), &json!(1))
    );
    assert_eq!(page["count"], 2);
    assert_eq!(page["data"][0]["status"], "Partially Failed");
    let next = page["next"].as_str().unwrap();
    assert!(next.ends_with("resultStart=1"), "{next}");
    assert!(next.starts_with("http://127.0.0.1:"), "{next}");
    // `sorting` on any field, several keys, nulls placed (issue 24).
    let first_status = |sorting: &str| {
        let (status, page) = server.get(&format!(
            "/api/v3/playbook/executions?sorting={}",
            sorting.replace(' ', "%20").replace(',', "%2C")
        ));
        assert_eq!(status, 200, "{sorting}: {page}");
        page["data"][0]["status"].as_str().unwrap().to_owned()
    };
    assert_eq!(first_status("status asc"), "Completed");
    assert_eq!(first_status("status desc"), "Partially Failed");
    assert_eq!(
        first_status("playbookXid DESC, completedTime desc nullslast"),
        "Completed",
        "phishing-triage sorts after partial-failure"
    );
    assert_eq!(first_status("id desc"), "Partially Failed");
    let (status, error) = server.get("/api/v3/playbook/executions?sorting=colour%20asc");
    assert_eq!((status, &error["status"]), (400, &json!("Error")));
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("`colour`, which is not a field"),
        "{error}"
    );
    // tcex sends a query string of 2,000 characters or more as the GET's body,
    // `{"data": {…}}`: it is read, not ignored (issue 24).
    let long = format!(
        r#"status = "Partially Failed" AND playbookXid != "{}""#,
        "x".repeat(2_100)
    );
    let body = json!({"data": {"tql": long, "resultLimit": 10, "count": true}}).to_string();
    let response = server
        .agent
        .get(server.url("/api/v3/playbook/executions"))
        .force_send_body()
        .send(body.as_str())
        .unwrap();
    let (status, page) = read(response);
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["count"], 1, "{page}");
    assert_eq!(page["data"][0]["status"], "Partially Failed");
    // Behind a TLS proxy the links say https (tcex follows only those), as the proxy
    // names the scheme in either header (issue 24).
    for (name, value) in [
        ("X-Forwarded-Proto", "https"),
        ("Forwarded", "for=10.0.0.1;proto=https;by=10.0.0.2"),
    ] {
        let response = server
            .agent
            .get(server.url("/api/v3/playbook/executions?resultLimit=1"))
            .header(name, value)
            .call()
            .unwrap();
        let (_, page) = read(response);
        let next = page["next"].as_str().unwrap();
        assert!(next.starts_with("https://127.0.0.1:"), "{name}: {next}");
    }
    let (_, page) =
        server.get("/api/v1/executions?count=true&tql=status%20%3D%20%22partially%20failed%22");
    assert_eq!(page["count"], 1);

    let (status, fields) = server.options("/api/v3/playbook/executions?show=readOnly");
    assert_eq!(status, 200);
    let names: Vec<&str> = fields["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "id",
            "playbookId",
            "playbookXid",
            "completedTime",
            "logLevel",
            "status",
            "queueTime",
            "startTime"
        ]
    );
    let (status, tql) = server.options("/api/v3/playbook/executions/tql");
    assert_eq!(status, 200);
    let completed = tql["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["keyword"] == "completedTime")
        .unwrap();
    assert_eq!(completed["type"], "Date");
}

#[test]
fn a_running_execution_is_killed_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("wasp.db"), &[]);
    let (status, started) = server.post("/api/v1/playbooks/runaway/run", "{\"indicator\": \"x\"}");
    assert_eq!(status, 202, "{started}");
    let id = started["execution_id"].as_str().unwrap().to_owned();
    assert_eq!(
        server.get(&format!("/api/v1/executions/{id}")).1["status"],
        "Running"
    );
    let (status, killed) = server.post(&format!("/api/v1/executions/{id}/kill"), "");
    assert_eq!((status, &killed["killed"]), (202, &json!(true)));
    let execution = server.wait_for_end(&id);
    assert_eq!(execution["status"], "Killed");
    assert_eq!(execution["message"], "killed on request");
    assert_eq!(execution["nodes"][1]["status"], "Killed");
    let (status, error) = server.post(&format!("/api/v1/executions/{id}/kill"), "");
    assert_eq!(status, 409);
    assert_eq!(
        error["error"],
        format!("execution `{id}` is not running: it is Killed")
    );
}

/// A caller who waits for the end is told nothing before it, so the steps of a playbook
/// that cannot reach outside wasp do not wait for the start to be stored; the start still
/// is, soon, and the execution is listed Running while it runs.
#[test]
fn a_run_waited_for_is_listed_running_while_it_runs_and_answered_with_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("wasp.db"), &[]);
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            server.post(
                "/api/v1/playbooks/runaway/run?wait=true",
                "{\"indicator\": \"x\"}",
            )
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let running = loop {
            let (_, page) = server.get(
                "/api/v1/executions?tql=playbookXid%20%3D%20%22runaway%22%20AND%20status%20%3D%20%22Running%22",
            );
            if let Some(row) = page["data"].as_array().and_then(|rows| rows.first()) {
                break row.clone();
            }
            assert!(Instant::now() < deadline, "never listed Running: {page}");
            std::thread::sleep(Duration::from_millis(10));
        };
        let id = running["id"].as_str().unwrap().to_owned();
        let (status, _) = server.post(&format!("/api/v1/executions/{id}/kill"), "");
        assert_eq!(status, 202);
        let (status, ended) = waiting.join().unwrap();
        assert_eq!(status, 200, "{ended}");
        assert_eq!(
            (&ended["id"], &ended["status"]),
            (&json!(id), &json!("Killed"))
        );
        assert_eq!(ended["num"], running["num"], "{ended}");
        let (_, stored) = server.get(&format!("/api/v1/executions/{}", running["num"]));
        assert_eq!(
            (&stored["id"], &stored["status"]),
            (&json!(id), &json!("Killed"))
        );
    });
}

#[test]
fn bad_input_gets_a_4xx_that_says_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("wasp.db"), &[]);
    let cases: [(u16, Value, &str); 9] = [
        (
            400,
            server
                .post("/api/v1/playbooks/runaway/run", "{\"indicator\": ")
                .1,
            "the body is not valid JSON: EOF while parsing a value at line 1 column 14",
        ),
        (
            404,
            server.post("/api/v1/playbooks/nope/run", "{}").1,
            "there is no playbook `nope`",
        ),
        (
            400,
            server
                .post("/api/v1/playbooks/runaway/run?log_level=loud", "{}")
                .1,
            "`log_level`: `loud` is not a log level; expected one of trace, debug, info, warn, error",
        ),
        (
            404,
            server.get("/api/v1/executions/ex_nope").1,
            "there is no execution `ex_nope`",
        ),
        (
            400,
            server.get("/api/v1/executions?limit=0").1,
            "`limit` is `0`; it must be a whole number from 1 to 10000",
        ),
        (
            400,
            server
                .get("/api/v1/executions?tql=colour%20%3D%20%22red%22")
                .1,
            "invalid TQL query: at position 1: there is no field `colour`; the fields are id, \
             executionId, playbookId, playbookXid, playbookName, status, logLevel, triggerType, \
             queueTime, startTime, completedTime, durationMs, parentId, replayOf",
        ),
        (
            404,
            server.get("/api/v9/anything").1,
            "there is no route GET /api/v9/anything",
        ),
        (
            400,
            server
                .get("/api/v3/playbook/executions?resultLimit=20000")
                .1,
            "`resultLimit` is `20000`; it must be a whole number from 1 to 10000",
        ),
        (
            404,
            server.get("/rest/container").1,
            "there is no route GET /rest/container",
        ),
    ];
    // A path a vendor's view does not serve is answered in that vendor's shape.
    let (status, missing) = server.get("/rest/container");
    assert_eq!(
        (status, &missing["failed"]),
        (404, &json!(true)),
        "{missing}"
    );
    let (status, missing) = server.get("/api/v3/groups");
    assert_eq!(
        (status, &missing["errCode"]),
        (404, &json!("0x1004")),
        "{missing}"
    );
    for (expected, body, message) in cases {
        let text = body.get("error").or_else(|| body.get("message"));
        assert_eq!(text.and_then(Value::as_str), Some(message), "{body}");
        if let Some(status) = body.get("status").and_then(Value::as_u64) {
            assert_eq!(status, u64::from(expected), "{body}");
        }
    }
    // ThreatConnect's error shape for a TQL syntax error.
    let (status, body) = server.get("/api/v3/playbook/executions?tql=status%20%3D");
    assert_eq!(status, 400);
    assert_eq!(body["errCode"], "0x2001");
    assert_eq!(body["status"], "Error");
    assert_eq!(
        body["message"],
        "invalid TQL query: at position 9: expected a value (a quoted string, a number, true, \
         false or NOW()), found the end of the query"
    );
    // A body over the limit is refused before it is read whole.
    let big = format!("{{\"text\": \"{}\"}}", "x".repeat(17 * 1024 * 1024));
    let response = server
        .agent
        .post(server.url("/api/v1/playbooks/runaway/run"))
        .send(big.as_str());
    match response {
        Ok(response) => assert_eq!(response.status().as_u16(), 413),
        // The server may close the connection before the client finishes sending.
        Err(e) => assert!(matches!(e, ureq::Error::Io(_)), "{e}"),
    }
}

/// Issue 24: API keys with roles (seed 002): a viewer reads, an operator also runs,
/// an admin also manages assets and keys; each key's token works in every client's
/// scheme, and a refusal comes in the view's shape.
#[test]
fn api_keys_carry_roles_and_are_refused_once_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wasp.db");
    let keys = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_wasp"))
            .arg("keys")
            .args(args)
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap()
    };
    let make = |role: &str| {
        let made = keys(&["create", "--role", role, "--name", role]);
        assert_eq!(
            made.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        String::from_utf8(made.stdout).unwrap().trim().to_owned()
    };
    let (viewer, operator, admin) = (make("viewer"), make("operator"), make("admin"));
    assert!(viewer.starts_with("wasp_key_"), "{viewer}");
    let other = keys(&["create", "--role", "viewer", "--tenant", "Acme Corp"]);
    assert_eq!(other.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("not a tenant's name"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    // No secret is kept: the database (and its log) hold each key's id, and none of
    // the secrets.
    let mut stored = std::fs::read(&db).unwrap();
    stored.extend(std::fs::read(dir.path().join("wasp.db-wal")).unwrap_or_default());
    let holds = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    for token in [&viewer, &operator, &admin] {
        let (id, secret) = token.trim_start_matches("wasp_").rsplit_once('_').unwrap();
        assert!(holds(id.as_bytes()), "the key {id} is stored");
        assert!(!holds(secret.as_bytes()), "the secret of {id} is not");
    }

    let server = Server::start(&db, &["--token", "bootstrap-0123456789"]);
    let call = |method: &str, path: &str, header: (&str, &str), body: &str| {
        let url = server.url(path);
        let response = match method {
            "GET" => server.agent.get(&url).header(header.0, header.1).call(),
            "DELETE" => server.agent.delete(&url).header(header.0, header.1).call(),
            _ => server
                .agent
                .post(&url)
                .header(header.0, header.1)
                .send(body),
        }
        .unwrap();
        read(response)
    };
    let bearer = |token: &str| format!("Bearer {token}");
    let get_as =
        |token: &str, path: &str| call("GET", path, ("Authorization", &bearer(token)), "").0;
    let run = "/api/v1/playbooks/ip-enrichment/run?wait=true";
    let ips = r#"{"ips": ["8.8.8.8"]}"#;

    // A viewer reads, in every client's scheme, and may not run.
    assert_eq!(get_as(&viewer, "/api/v1/executions"), 200);
    assert_eq!(
        call("GET", "/rest/version", ("ph-auth-token", &viewer), "").0,
        200
    );
    let (status, refused) = call("POST", run, ("Authorization", &bearer(&viewer)), ips);
    assert_eq!(status, 403);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("needs the operator role, and the key presented is a viewer"),
        "{refused}"
    );
    // Nor kill: whether the execution exists or not, the role is refused first.
    let kill = "/api/v1/executions/ex_01ANY/kill";
    assert_eq!(
        call("POST", kill, ("Authorization", &bearer(&viewer)), "").0,
        403
    );
    // SecMaster's search is a POST that only reads; an event fires playbooks.
    let search = "/v1/p/workspaces/default/soc/playbooks/instances/auditlogs?offset=0&limit=10";
    assert_eq!(call("POST", search, ("X-Auth-Token", &viewer), "{}").0, 200);
    assert_eq!(
        call(
            "POST",
            "/api/v1/events",
            ("Authorization", &bearer(&viewer)),
            "{}"
        )
        .0,
        403
    );
    let (status, refused) = call("POST", "/rest/action_run", ("ph-auth-token", &viewer), SPIN);
    assert_eq!(
        (status, &refused["failed"]),
        (403, &json!(true)),
        "{refused}"
    );
    // An operator runs, and may not change assets.
    assert_eq!(
        call("POST", run, ("Authorization", &bearer(&operator)), ips).0,
        200
    );
    let asset = r#"{"name": "x", "app": "ioc-extract"}"#;
    assert_eq!(
        call("POST", "/api/v1/assets", ("X-Auth-Token", &operator), asset).0,
        403
    );
    assert_eq!(get_as(&operator, "/api/v1/keys"), 403);
    // Writes are stamped with the key that made them (seed 003).
    let key_id = |token: &str| {
        token
            .trim_start_matches("wasp_")
            .rsplit_once('_')
            .unwrap()
            .0
            .to_owned()
    };
    let yaml = "id: stamped\nname: Stamped\ntrigger: { type: manual }\nnodes:\n  \
                n: { app: transform, action: count, input: { items: [1] } }\n";
    let (status, made) = call(
        "POST",
        "/api/v1/playbooks",
        ("ph-auth-token", &operator),
        yaml,
    );
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (
            &made["created_by"],
            &made["updated_by"],
            &made["deleted_by"]
        ),
        (
            &json!(key_id(&operator)),
            &json!(key_id(&operator)),
            &Value::Null
        )
    );
    let (status, gone) = call(
        "DELETE",
        "/api/v1/playbooks/stamped",
        ("Authorization", &bearer(&admin)),
        "",
    );
    assert_eq!(status, 200, "{gone}");
    assert_eq!(gone["deleted_by"], json!(key_id(&admin)));
    // An admin makes keys; the token is in that answer only.
    let (status, made) = call(
        "POST",
        "/api/v1/keys",
        ("Authorization", &bearer(&admin)),
        r#"{"name": "splunk-sync", "role": "viewer"}"#,
    );
    assert_eq!(status, 201, "{made}");
    let fresh = made["token"].as_str().unwrap().to_owned();
    assert_eq!(get_as(&fresh, "/api/v1/executions"), 200);
    let (_, listed) = call(
        "GET",
        "/api/v1/keys",
        ("Authorization", &bearer(&admin)),
        "",
    );
    assert_eq!(listed["count"], 4);
    assert!(
        !listed
            .to_string()
            .contains(fresh.rsplit('_').next().unwrap())
    );
    // Revoked, it is refused at once; a wrong secret is refused too.
    let id = made["id"].as_str().unwrap();
    let (status, revoked) = call(
        "DELETE",
        &format!("/api/v1/keys/{id}"),
        ("Authorization", &bearer(&admin)),
        "",
    );
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    assert_eq!(get_as(&fresh, "/api/v1/executions"), 401);
    // The viewer's token with its last hex digit changed.
    let last = if viewer.ends_with('0') { "1" } else { "0" };
    let wrong = format!("{}{last}", &viewer[..viewer.len() - 1]);
    assert_eq!(get_as(&wrong, "/api/v1/executions"), 401);

    // From the command line: listed without secrets, revoked once.
    let listed = keys(&["list", "--output", "json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 4);
    assert!(listed[0].get("secret_sha256").is_none(), "{listed}");
    let viewer_id = listed[0]["id"].as_str().unwrap();
    assert_eq!(keys(&["revoke", viewer_id]).status.code(), Some(0));
    let again = keys(&["revoke", viewer_id]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("revoked already"));
    // A server without a token would enforce no role: it refuses to start on keys.
    drop(server);
    let open = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(["serve", "--addr", "127.0.0.1:0", "--db"])
        .arg(&db)
        .arg("--playbooks")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../example-apps/playbooks"
        ))
        .env("WASP_APPS", example_apps_dir())
        .env("WASP_CACHE_DIR", cache_dir())
        .env_remove("WASP_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(open.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&open.stderr)
            .contains("API key(s), whose roles only a server with a token"),
        "{}",
        String::from_utf8_lossy(&open.stderr)
    );
}

/// With `--public-url`, links are the configured address whatever the request says;
/// a value that is not an address is refused at start.
#[test]
fn links_use_the_public_url_when_one_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("wasp.db"),
        &["--public-url", "https://wasp.example.com/"],
    );
    let yaml = "id: quick\nname: Quick\ntrigger: { type: manual }\nnodes:\n  \
                n: { app: transform, action: count, input: { items: [1] } }\n";
    assert_eq!(server.post("/api/v1/playbooks", yaml).0, 201);
    for _ in 0..2 {
        assert_eq!(
            server.post("/api/v1/playbooks/quick/run?wait=true", "{}").0,
            200
        );
    }
    let (_, page) = server.get("/api/v3/playbook/executions?resultLimit=1");
    let next = page["next"].as_str().unwrap();
    assert!(
        next.starts_with("https://wasp.example.com/api/v3/playbook/executions?"),
        "{next}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--public-url",
            "wasp.example.com/x",
            "--db",
        ])
        .arg(dir.path().join("other.db"))
        .env("WASP_APPS", example_apps_dir())
        .env("WASP_CACHE_DIR", cache_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("--public-url `wasp.example.com/x` is not an address"),
        "{said}"
    );
}

#[test]
fn a_token_is_required_when_set_and_required_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("wasp.db"),
        &["--token", "s3cret-0123456789"],
    );
    assert_eq!(server.get("/api/v1/playbooks").0, 200);
    let response = server
        .agent
        .get(server.url("/api/v1/playbooks"))
        .call()
        .unwrap();
    let (status, body) = read(response);
    assert_eq!(status, 401);
    assert_eq!(
        body["error"],
        "this server requires `Authorization: Bearer <token>`"
    );
    let response = server
        .agent
        .get(server.url("/api/v1/playbooks"))
        .header("Authorization", "Bearer s3cret-012345678")
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    // Each vendor's clients send the token their way; every scheme works on every view,
    // and a refusal comes in the view's own error shape (issue 24).
    let token = "s3cret-0123456789";
    let schemes = [
        ("Authorization", format!("Bearer {token}")),
        ("Authorization", format!("TC-Token {token}")),
        ("ph-auth-token", token.to_owned()),
        ("X-Auth-Token", token.to_owned()),
    ];
    let views = [
        ("GET", "/api/v1/executions"),
        ("GET", "/api/v3/playbook/executions"),
        // What Splunk clients call first, to check their credentials.
        ("GET", "/rest/version"),
        (
            "POST",
            "/v1/p/workspaces/default/soc/playbooks/instances/auditlogs?offset=0&limit=10",
        ),
    ];
    let call = |method: &str, path: &str, header: Option<(&str, &str)>| {
        let url = server.url(path);
        let response = match (method, header) {
            ("GET", Some((name, value))) => server.agent.get(&url).header(name, value).call(),
            ("GET", None) => server.agent.get(&url).call(),
            (_, Some((name, value))) => server.agent.post(&url).header(name, value).send("{}"),
            (_, None) => server.agent.post(&url).send("{}"),
        };
        let response = response.unwrap();
        let request_id = response.headers().get("x-request-id").is_some();
        let (status, body) = read(response);
        (status, body, request_id)
    };
    for (method, path) in views {
        for (name, value) in &schemes {
            let (status, body, _) = call(method, path, Some((name, value)));
            assert_eq!(status, 200, "{name}: {value} on {path}: {body}");
        }
    }
    let wrong = Some(("Authorization", "TC-Token not-the-token-at-all"));
    let (status, body, _) = call("GET", "/api/v3/playbook/executions", wrong);
    assert_eq!(status, 401);
    assert_eq!(
        (&body["status"], &body["errCode"]),
        (&json!("Error"), &json!("0x1001")),
        "{body}"
    );
    let (status, body, _) = call("GET", "/rest/version", None);
    assert_eq!(status, 401);
    assert_eq!(body["failed"], true, "{body}");
    assert_eq!(
        body["message"],
        "this server requires `ph-auth-token: <token>`, or basic auth with the token as the \
         password (or `Authorization: Bearer <token>`)"
    );
    let (status, body, request_id) = call("POST", views[3].1, None);
    assert_eq!(status, 401);
    assert_eq!(body["code"], "APIGW.0301", "{body}");
    assert!(request_id, "SecMaster answers carry X-request-id");

    // A supervisor's health check needs no token, and learns only that wasp answers.
    let health = server.agent.get(server.url("/healthz")).call().unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(health.into_body().read_to_string().unwrap(), "ok\n");

    let output = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(["serve", "--addr", "0.0.0.0:0", "--db"])
        .arg(dir.path().join("other.db"))
        .env("WASP_APPS", example_apps_dir())
        .env("WASP_CACHE_DIR", cache_dir())
        .env_remove("WASP_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{stderr}"
    );
    // Issue 21: a blank or one-character token was taken on 0.0.0.0.
    for weak in [" ", "x", "aaaaaaaaaaaaaaaaaaaa"] {
        let output = Command::new(env!("CARGO_BIN_EXE_wasp"))
            .args(["serve", "--addr", "0.0.0.0:0", "--token", weak, "--db"])
            .arg(dir.path().join("other.db"))
            .env("WASP_APPS", example_apps_dir())
            .env("WASP_CACHE_DIR", cache_dir())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{weak:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("refusing a weak token: the token has"),
            "{stderr}"
        );
    }
}

each_store!(executions_cut_short_by_sigkill_are_failed_on_restart_and_finished_ones_kept);
#[allow(
    clippy::unwrap_used,
    reason = "a test, run on each store by each_store!"
)]
fn executions_cut_short_by_sigkill_are_failed_on_restart_and_finished_ones_kept(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = db.in_dir(dir.path()) else {
        return;
    };
    let mut server = Server::start(&db, &[]);
    let (status, done) = server.post(
        "/api/v1/playbooks/ip-enrichment/run?wait=true",
        &sample_input("ip-enrichment"),
    );
    assert_eq!(status, 200);
    let done_id = done["id"].as_str().unwrap().to_owned();
    let running: Vec<String> = (0..5)
        .map(|_| {
            let (status, started) =
                server.post("/api/v1/playbooks/runaway/run", "{\"indicator\": \"x\"}");
            assert_eq!(status, 202);
            started["execution_id"].as_str().unwrap().to_owned()
        })
        .collect();
    // Splunk action runs too (issue 21): one running a step, one still pending in its
    // delay.
    let spinning = spinning_action_run(&server);
    let delayed = SPIN.replace(
        r#""name":"hang""#,
        r#""name":"later","exec_delay_secs":600"#,
    );
    let (_, created) = server.post("/rest/action_run", &delayed);
    let pending = created["action_run_id"].as_i64().unwrap();
    assert_eq!(
        server.get(&format!("/rest/action_run/{pending}")).1["status"],
        "pending"
    );
    // Each step is stored as it ends, readable while its execution runs (issue 23).
    for id in &running {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (status, steps) = server.get(&format!("/api/v1/executions/{id}/steps"));
            assert_eq!(status, 200, "{steps}");
            if steps["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["node"] == "check")
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no step of {id}: {steps}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // SIGKILL: no chance to clean up.
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let server = Server::start(&db, &[]);
    for id in &running {
        let (_, execution) = server.get(&format!("/api/v1/executions/{id}"));
        assert_eq!(
            (&execution["status"], &execution["message"]),
            (&json!("Failed"), &json!("interrupted by restart")),
            "{execution}"
        );
        // What ran before the process died is kept: the step that ended, whole.
        let steps = execution["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 1, "{execution}");
        assert_eq!(steps[0]["node"], "check");
        assert_eq!(steps[0]["report"]["output"]["text"], "x", "{execution}");
    }
    let (_, execution) = server.get(&format!("/api/v1/executions/{done_id}"));
    assert_eq!(execution["status"], "Completed");
    assert_eq!(execution["nodes"][0]["iterations"], 5);
    for id in [spinning, pending] {
        let (_, run) = server.get(&format!("/rest/action_run/{id}"));
        assert_eq!(
            (&run["status"], &run["message"]),
            (&json!("failed"), &json!("interrupted by restart")),
            "{run}"
        );
        assert!(run["close_time"].is_string(), "{run}");
        let (status, error) = server.post(&format!("/rest/action_run/{id}"), r#"{"cancel": true}"#);
        assert_eq!(status, 409, "{error}");
        assert_eq!(
            error["message"],
            format!("action run {id} is not running: it is failed")
        );
    }
    let (_, app_runs) = server.get(&format!("/rest/action_run/{spinning}/app_runs"));
    let app_run = &app_runs["data"][0];
    assert_eq!(
        (
            &app_run["status"],
            &app_run["message"],
            &app_run["exception_occured"]
        ),
        (
            &json!("failed"),
            &json!("interrupted by restart"),
            &json!(true)
        ),
        "{app_runs}"
    );
    assert!(app_run["end_time"].is_string(), "{app_run}");
}

/// Reads Server-Sent Events: `(event name, data)` pairs.
pub(crate) struct SseReader(Box<dyn BufRead>);

impl SseReader {
    fn open(server: &Server, path: &str) -> Self {
        Self::open_as(server, path, None)
    }

    /// The stream at `path`, asked for with `Authorization: Bearer <token>`.
    pub(crate) fn open_as(server: &Server, path: &str, token: Option<&str>) -> Self {
        let request = server.agent.get(server.url(path));
        let request = match token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        };
        let response = request.call().expect("a well-formed event stream");
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .expect("a well-formed event stream")
            .to_owned();
        assert_eq!(content_type, "text/event-stream");
        Self(Box::new(BufReader::new(response.into_body().into_reader())))
    }

    /// The next event, or `None` when the stream ends.
    pub(crate) fn next(&mut self) -> Option<(String, Value)> {
        let (mut name, mut data) = (String::new(), String::new());
        loop {
            let mut line = String::new();
            if self
                .0
                .read_line(&mut line)
                .expect("a well-formed event stream")
                == 0
            {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if !name.is_empty() {
                    return Some((
                        name,
                        serde_json::from_str(&data).expect("a well-formed event stream"),
                    ));
                }
            } else if let Some(value) = line.strip_prefix("event:") {
                name = value.trim().to_owned();
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.trim_start());
            }
        }
    }
}

#[test]
fn events_stream_live_node_and_step_states_after_they_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("wasp.db"), &[]);
    let mut all = SseReader::open(&server, "/api/v1/events");
    let (_, started) = server.post(
        "/api/v1/playbooks/partial-failure/run",
        &sample_input("partial-failure"),
    );
    let id = started["execution_id"].as_str().unwrap().to_owned();
    let mut seen = Vec::new();
    while let Some((name, data)) = all.next() {
        if data["execution_id"] != id.as_str() {
            continue;
        }
        let node = data["node"].as_str().unwrap_or_default().to_owned();
        seen.push((name.clone(), node, data["status"].clone()));
        if name == "execution_ended" {
            break;
        }
    }
    // Each node starts, runs a step and ends, in that order; the execution ends last.
    for node in ["defang", "ticket", "classify"] {
        let position = |event: &str| {
            seen.iter()
                .position(|(n, id, _)| n == event && id == node)
                .unwrap_or_else(|| panic!("no {event} for {node}: {seen:?}"))
        };
        assert!(
            position("node_started") < position("step_ended"),
            "{seen:?}"
        );
        assert!(position("step_ended") < position("node_ended"), "{seen:?}");
    }
    let last = seen.last().unwrap();
    assert_eq!(
        (last.0.as_str(), &last.2),
        ("execution_ended", &json!("Partially Failed"))
    );
    assert!(seen.contains(&(
        "node_ended".to_owned(),
        "classify".to_owned(),
        json!("Failed")
    )));

    // A stream of only some types carries only those; an unknown type is refused.
    let mut ends = SseReader::open(&server, "/api/v1/events?types=execution_ended");
    let (_, started) = server.post(
        "/api/v1/playbooks/partial-failure/run",
        &sample_input("partial-failure"),
    );
    let (name, data) = ends.next().expect("an event");
    assert_eq!(name, "execution_ended");
    assert_eq!(data["execution_id"], started["execution_id"]);
    let (status, error) = server.get("/api/v1/events?types=node_started,lunch");
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("`lunch`"),
        "{error}"
    );

    // One execution's stream: a snapshot, live events, and the end.
    let (_, started) = server.post("/api/v1/playbooks/runaway/run", "{\"indicator\": \"x\"}");
    let id = started["execution_id"].as_str().unwrap().to_owned();
    let mut one = SseReader::open(&server, &format!("/api/v1/executions/{id}/events"));
    let (name, snapshot) = one.next().unwrap();
    assert_eq!(name, "snapshot");
    assert_eq!(snapshot["execution"]["status"], "Running");
    // While it runs, the execution's record holds the node states so far.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, execution) = server.get(&format!("/api/v1/executions/{id}"));
        let spin = execution["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == "spin")
            .cloned();
        if spin.is_some_and(|n| n["status"] == "Running") {
            break;
        }
        assert!(Instant::now() < deadline, "{execution}");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.post(&format!("/api/v1/executions/{id}/kill"), "");
    let mut names = Vec::new();
    while let Some((name, data)) = one.next() {
        assert_eq!(data["execution_id"], id.as_str());
        names.push(name);
    }
    assert_eq!(
        names.last().map(String::as_str),
        Some("execution_ended"),
        "{names:?}"
    );
    assert!(names.contains(&"node_ended".to_owned()), "{names:?}");
}

each_store!(steps_logs_csv_and_os_logs_of_an_execution);
#[allow(
    clippy::unwrap_used,
    reason = "a test, run on each store by each_store!"
)]
fn steps_logs_csv_and_os_logs_of_an_execution(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = db.in_dir(dir.path()) else {
        return;
    };
    let server = Server::start(&db, &[]);
    let (_, execution) = server.post(
        "/api/v1/playbooks/ip-enrichment/run?wait=true",
        &sample_input("ip-enrichment"),
    );
    let id = execution["id"].as_str().unwrap().to_owned();

    let (status, steps) = server.get(&format!("/api/v1/executions/{id}/steps"));
    assert_eq!(status, 200);
    assert_eq!(
        steps["count"], 7,
        "5 iterations of classify, reputation, public"
    );
    let (_, classify) = server.get(&format!("/api/v1/executions/{id}/steps?node=classify"));
    let mut iterations: Vec<u64> = classify["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["iteration"].as_u64().unwrap())
        .collect();
    iterations.sort_unstable();
    assert_eq!(iterations, [0, 1, 2, 3, 4]);
    let step = &classify["data"][0];
    assert_eq!(
        (&step["app"], &step["action"]),
        (&json!("ip-classify"), &json!("classify"))
    );
    assert_eq!(step["capture"]["data"], true);
    assert!(step["input"]["ip"].is_string(), "{step}");

    // The same language over step runs across executions.
    let (_, found) = server.get(
        "/api/v1/steps?tql=app%20%3D%20%22ip-classify%22%20AND%20status%20%3D%20%22succeeded%22",
    );
    assert_eq!(found["count"], 5);
    let (_, found) = server.get("/api/v1/steps?tql=status%20%3D%20%22Failed%22");
    assert_eq!(found["count"], 0);

    let (_, logs) = server.get(&format!("/api/v1/executions/{id}/logs?level=debug"));
    let count = logs["count"].as_i64().unwrap();
    assert!(count >= 5, "{logs}");
    assert_eq!(logs["data"][0]["level"], "debug");
    let (_, none) = server.get(&format!("/api/v1/executions/{id}/logs?level=warn"));
    assert_eq!(none["count"], 0);
    let (_, found) = server.get(&format!(
        "/api/v1/executions/{id}/logs?q=classified&node=classify"
    ));
    assert_eq!(found["count"], 5, "{found}");
    let (_, found) = server.get("/api/v1/logs?tql=message%20CONTAINS%20%22classified%22");
    assert_eq!(found["count"], 5, "{found}");

    let mut response = server
        .agent
        .get(server.url(&format!("/api/v1/executions/{id}/logs?format=csv")))
        .call()
        .unwrap();
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/csv; charset=utf-8"
    );
    let csv = response.body_mut().read_to_string().unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("ts,level,execution_id,node,iteration,attempt,message,fields")
    );
    assert_eq!(lines.count() as i64, count);

    let mut response = server
        .agent
        .get(server.url(&format!("/api/v1/executions/{id}/oslogs.zip")))
        .call()
        .unwrap();
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/zip"
    );
    let bytes = response.body_mut().read_to_vec().unwrap();
    let archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut names: Vec<String> = archive
        .file_names()
        .map(|name| name.expect("a UTF-8 name").into_owned())
        .collect();
    names.sort_unstable();
    assert_eq!(names.len(), 15, "{names:?}");
    assert!(
        names
            .iter()
            .any(|n| n == "classify-iteration3-attempt1.stderr.txt"),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "README.txt"), "{names:?}");
}

// Issue 23: a caller waiting for a run at the default level got no node outputs at
// all, so a playbook could not answer the system that called it.
#[test]
fn a_caller_waiting_for_a_run_gets_the_playbooks_declared_output_at_info() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("wasp.db"), &[]);
    let yaml = "\
id: answer
name: Answer
trigger: { type: manual }
output: { indicators: \"${iocs.output.count}\", domains: \"${iocs.output.domains}\" }
nodes:
  iocs: { app: ioc-extract, action: extract, input: { text: \"${trigger.text}\" } }
";
    let (status, created) = server.post("/api/v1/playbooks", yaml);
    assert_eq!(status, 201, "{created}");
    let (status, run) = server.post(
        "/api/v1/playbooks/answer/run?wait=true",
        "{\"text\": \"see evil[.]com and 10.0.0.1\"}",
    );
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["log_level"], "info");
    assert_eq!(
        run["nodes"][0]["output"],
        Value::Null,
        "INFO keeps no node output"
    );
    assert_eq!(
        run["output"],
        json!({"indicators": 2, "domains": ["evil.com"]})
    );
    // It is stored with the execution.
    let id = run["id"].as_str().unwrap();
    let (_, stored) = server.get(&format!("/api/v1/executions/{id}"));
    assert_eq!(stored["output"], run["output"], "{stored}");

    // A path the app's output cannot have is refused when the playbook is saved.
    let (status, error) = server.post(
        "/api/v1/playbooks",
        &yaml
            .replace("id: answer", "id: typo")
            .replace("iocs.output.count", "iocs.output.cuont"),
    );
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("`output`: `${iocs.output.cuont}`: `iocs.output` has no field `cuont`"),
        "{error}"
    );
}

#[test]
fn playbooks_are_created_validated_updated_and_soft_deleted_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("wasp.db"), &[]);
    let yaml = "\
id: defang-it
name: Defang it
log_level: debug
trigger: { type: manual }
nodes:
  defang: { app: ioc-extract, action: defang, input: { text: \"${trigger.text}\" } }
";
    let (status, created) = server.post("/api/v1/playbooks", yaml);
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (&created["xid"], &created["source"]),
        (&json!("defang-it"), &json!("api"))
    );
    let (status, again) = server.post("/api/v1/playbooks", yaml);
    assert_eq!(status, 409);
    assert_eq!(
        again["error"],
        "a playbook `defang-it` exists; change it with PUT /api/v1/playbooks/defang-it"
    );
    let (_, run) = server.post(
        "/api/v1/playbooks/defang-it/run?wait=true",
        "{\"text\": \"evil.com\"}",
    );
    assert_eq!(run["nodes"][0]["output"]["text"], "evil[.]com");

    // Every problem at once, each naming its node and field.
    let bad = "id: broken\nname: Broken\ntrigger: { type: manual }\nnodes:\n  \
               a: { app: nope, action: x }\n  b: { app: ioc-extract, action: defang, \
               input: { text: \"${c.output.text}\" } }\n";
    let (status, error) = server.post("/api/v1/playbooks", bad);
    assert_eq!(status, 400);
    let message = error["error"].as_str().unwrap();
    assert!(
        message.contains("`a`") && message.contains("nope"),
        "{message}"
    );
    assert!(
        message.contains("`b`") && message.contains("`c`"),
        "{message}"
    );

    // An update keeps the ids; the XID cannot change. Its owner is settable (seed 003).
    let updated = format!(
        "owner_id: per_ada\n{}",
        yaml.replace("defang, input", "refang, input")
    );
    let response = server
        .agent
        .put(server.url("/api/v1/playbooks/defang-it"))
        .send(updated.as_str())
        .unwrap();
    let (status, record) = read(response);
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["id"], created["id"]);
    assert_eq!(record["definition"]["nodes"]["defang"]["action"], "refang");
    assert_eq!(
        (&created["owner_id"], &record["owner_id"]),
        (&Value::Null, &json!("per_ada"))
    );
    assert_eq!(record["source_type"], "api");
    // A step that now runs something else makes the change incompatible: the record's
    // schema_version goes up; a change that keeps every step does not move it.
    assert_eq!(
        (&created["schema_version"], &record["schema_version"]),
        (&json!(1), &json!(2))
    );
    let described = format!("description: still the same steps\n{updated}");
    let response = server
        .agent
        .put(server.url("/api/v1/playbooks/defang-it"))
        .send(described.as_str())
        .unwrap();
    let (status, same) = read(response);
    assert_eq!(
        (status, &same["schema_version"]),
        (200, &json!(2)),
        "{same}"
    );
    let (_, run) = server.post(
        "/api/v1/playbooks/defang-it/run?wait=true",
        "{\"text\": \"evil[.]com\"}",
    );
    assert_eq!(run["nodes"][0]["output"]["text"], "evil.com");
    let renamed = yaml.replace("id: defang-it", "id: other");
    let response = server
        .agent
        .put(server.url("/api/v1/playbooks/defang-it"))
        .send(renamed.as_str())
        .unwrap();
    assert_eq!(read(response).0, 400);

    let response = server
        .agent
        .delete(server.url("/api/v1/playbooks/defang-it"))
        .call()
        .unwrap();
    let (status, deleted) = read(response);
    assert_eq!((status, &deleted["is_deleted"]), (200, &json!(true)));
    assert_eq!(server.get("/api/v1/playbooks/defang-it").0, 404);
    assert_eq!(server.post("/api/v1/playbooks/defang-it/run", "{}").0, 404);
    // Its executions stay.
    let (_, page) =
        server.get("/api/v1/executions?count=true&tql=playbookXid%20%3D%20%22defang-it%22");
    assert_eq!(page["count"], 2);
}

/// Poll Splunk action run `id` until it is no longer pending or running.
fn action_run_done(server: &Server, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, run) = server.get(&format!("/rest/action_run/{id}"));
        assert_eq!(status, 200, "{run}");
        if !matches!(run["status"].as_str(), Some("pending" | "running")) {
            return run;
        }
        assert!(Instant::now() < deadline, "{run}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

each_store!(splunk_soar_action_runs_one_sandboxed_call_per_parameter_set);
#[allow(
    clippy::unwrap_used,
    reason = "a test, run on each store by each_store!"
)]
fn splunk_soar_action_runs_one_sandboxed_call_per_parameter_set(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = db.in_dir(dir.path()) else {
        return;
    };
    let server = Server::start(&db, &[]);
    let body = r#"{"action":"extract","container_id":1,"name":"x","targets":[{"app_id":"ioc-extract","assets":[],"parameters":[{"text":"a 1.2.3.4"},{"text":"b evil.com"}]}]}"#;
    let (status, created) = server.post("/rest/action_run", body);
    assert_eq!(status, 200, "{created}");
    assert_eq!(
        (&created["message"], &created["success"]),
        (&json!("New action queued."), &json!(true))
    );
    let id = created["action_run_id"].as_i64().unwrap();
    let run = action_run_done(&server, id);
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(
        (&run["action"], &run["container"], &run["id"]),
        (&json!("extract"), &json!(1), &json!(id))
    );
    assert!(run["close_time"].is_string());

    let (_, app_runs) = server.get(&format!("/rest/action_run/{id}/app_runs"));
    assert_eq!(
        (&app_runs["count"], &app_runs["num_pages"]),
        (&json!(1), &json!(1))
    );
    let app_run = &app_runs["data"][0];
    assert_eq!(
        (&app_run["app_name"], &app_run["status"]),
        (&json!("ioc-extract"), &json!("success"))
    );
    let app_run_id = app_run["id"].as_i64().unwrap();
    let (_, full) = server.get(&format!("/rest/app_run/{app_run_id}"));
    assert_eq!(
        full["result_summary"],
        json!({"total_objects": 2, "total_objects_successful": 2})
    );
    let (_, page) = server.get(&format!(
        "/rest/app_run/{app_run_id}/action_result?page=1&page_size=1"
    ));
    assert_eq!((&page["count"], &page["num_pages"]), (&json!(2), &json!(2)));
    let parameter = &page["data"][0]["parameter"];
    assert_eq!(parameter["text"], "b evil.com");
    assert!(parameter["context"]["guid"].is_string(), "{parameter}");
    assert!(
        app_run["node_guid"].is_string() && app_run.get("effective_user").is_some(),
        "{app_run}"
    );
    assert_eq!(page["data"][0]["data"][0]["domains"], json!(["evil.com"]));
    assert_eq!(page["data"][0]["status"], "success");

    // Assets by number (their order by name): 3 is `soc-feed`.
    let body = r#"{"action":"lookup","container_id":7,"name":"rep","targets":[{"app_id":"indicator-lookup","assets":[3],"parameters":[{"indicator":"m365-verify.top"}]}]}"#;
    let (_, created) = server.post("/rest/action_run", body);
    let run = action_run_done(&server, created["action_run_id"].as_i64().unwrap());
    assert_eq!(run["status"], "success", "{run}");
    let (_, app_runs) = server.get(&format!(
        "/rest/action_run/{}/app_runs?include_expensive=1",
        run["id"]
    ));
    assert_eq!(app_runs["data"][0]["asset_name"], "soc-feed");
    assert_eq!(
        app_runs["data"][0]["result_data"][0]["data"][0]["verdict"],
        "malicious"
    );

    // Counted in actions, one per parameter set (issue 24: one failure of two in one
    // app run said "1 of 1 actions failed").
    let half = r#"{"action":"extract","container_id":3,"name":"half","targets":[{"app_id":"ioc-extract","assets":[],"parameters":[{"text":"1.2.3.4"},{"txt":"no text"}]}]}"#;
    let (_, created) = server.post("/rest/action_run", half);
    let half_id = created["action_run_id"].as_i64().unwrap();
    let run = action_run_done(&server, half_id);
    assert_eq!(
        (&run["status"], &run["message"]),
        (&json!("failed"), &json!("1 of 2 actions failed")),
        "{run}"
    );

    // Lists take Splunk's filters, order and paging (issue 24: a filtered app-run list
    // answered every run).
    let count = |path: &str| {
        let (status, page) = server.get(path);
        assert_eq!(status, 200, "{path}: {page}");
        page["count"].as_i64().unwrap()
    };
    assert_eq!(count("/rest/action_run"), 3);
    assert_eq!(count("/rest/action_run?_filter_container=7"), 1);
    assert_eq!(count("/rest/action_run?_filter_container__in=[1,7]"), 2);
    assert_eq!(
        count("/rest/action_run?_filter_name__icontains=%22REP%22"),
        1
    );
    assert_eq!(count("/rest/app_run?_filter_app_name=%22ioc-extract%22"), 2);
    assert_eq!(count("/rest/app_run?_filter_app_name=ioc-extract"), 2);
    let (_, other) = server.get("/rest/app_run?_exclude_app_name=%22ioc-extract%22");
    assert_eq!(other["count"], 1);
    assert_eq!(other["data"][0]["app_name"], "indicator-lookup");
    let (_, sorted) = server.get("/rest/action_run?sort=container&order=desc&page_size=1");
    assert_eq!(
        (&sorted["data"][0]["container"], &sorted["num_pages"]),
        (&json!(7), &json!(3))
    );
    let (status, error) = server.get("/rest/app_run?_filter_app_name__near=1");
    assert_eq!((status, &error["failed"]), (400, &json!(true)));
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("`near` is not a lookup"),
        "{error}"
    );

    // The seed's own examples name apps and assets this server does not have.
    let seed = r#"{ "action": "whois domain", "container_id": 1234, "exec_delay_secs": 30, "name": "test my action delay", "targets": [ {"app_id": 161, "assets": [2], "parameters": [{"domain": "splunk.com"}]} ] }"#;
    let (status, error) = server.post("/rest/action_run", seed);
    assert_eq!(status, 400);
    assert_eq!(error["failed"], true);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("`targets[0].app_id` 161 is not an app; the apps are chaos, "),
        "{error}"
    );
    let seed = r#"{ "action": "file reputation", "container_id": 42, "name": "my action", "targets": [{ "assets": [ "my_reversinglabs_asset" ], "parameters": [{ "hash": "<hash 1>" }, { "hash": "<hash 2>" }, { "hash": "<hash 3>" } ], "app_id": 12 }], "type": "investigative" }"#;
    let (status, error) = server.post("/rest/action_run", seed);
    assert_eq!((status, &error["failed"]), (400, &json!(true)));
    // App 12 is whatever is twelfth in `wasp app list`; none has this action.
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("`targets[0].app_id` 12 is not an app")
            || message.contains("has no action `file reputation`"),
        "{error}"
    );
    let (status, error) = server.post(
        "/rest/action_run",
        r#"{"action":"extract","container_id":1,"name":"x","targets":[],"colour":"red"}"#,
    );
    assert_eq!(status, 400);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{error}"
    );
    assert_eq!(server.get("/rest/action_run/999").0, 404);
    let twice = r#"{"action":"lookup","container_id":1,"name":"x","targets":[{"app_id":"indicator-lookup","assets":["soc-feed",3],"parameters":[{"indicator":"a.b"}]}]}"#;
    let (status, error) = server.post("/rest/action_run", twice);
    assert_eq!(status, 400);
    assert_eq!(
        error["message"],
        "`targets[0].assets` names asset `soc-feed` twice"
    );
    let forever = r#"{"action":"extract","container_id":1,"name":"x","exec_delay_secs":18446744073709551615,"targets":[]}"#;
    let (status, error) = server.post("/rest/action_run", forever);
    assert_eq!(status, 400);
    assert_eq!(
        error["message"],
        "`exec_delay_secs` is 18446744073709551615; it may be at most 86400 (a day)"
    );
}

/// An action run whose one app run spins until it is stopped.
pub(crate) const SPIN: &str = r#"{"action":"spin","container_id":1,"name":"hang","targets":[{"app_id":"chaos","parameters":[{}]}]}"#;

/// Start a [`SPIN`] action run and wait until it runs; its id.
fn spinning_action_run(server: &Server) -> i64 {
    let (_, created) = server.post("/rest/action_run", SPIN);
    let id = created["action_run_id"].as_i64().expect("an action run id");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get(&format!("/rest/action_run/{id}")).1["status"] != "running" {
        assert!(Instant::now() < deadline, "action run {id} never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    id
}

#[test]
fn a_splunk_soar_action_run_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("wasp.db"), &[]);
    let id = spinning_action_run(&server);
    let (status, cancelled) = server.post(&format!("/rest/action_run/{id}"), r#"{"cancel": true}"#);
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["cancelled"], true);
    let run = action_run_done(&server, id);
    assert_eq!(
        (&run["status"], &run["cancelled"]),
        (&json!("failed"), &json!("cancelled on request"))
    );
    let (status, error) = server.post(&format!("/rest/action_run/{id}"), r#"{"cancel": true}"#);
    assert_eq!(status, 409);
    assert_eq!(error["failed"], true);
}

each_store!(secmaster_audit_logs_list_playbook_and_app_instances);
#[allow(
    clippy::unwrap_used,
    reason = "a test, run on each store by each_store!"
)]
fn secmaster_audit_logs_list_playbook_and_app_instances(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = db.in_dir(dir.path()) else {
        return;
    };
    let server = Server::start(&db, &[]);
    let (_, parent) = server.post(
        "/api/v1/playbooks/parent-child/run?wait=true",
        &sample_input("parent-child"),
    );
    let parent_id = parent["id"].as_str().unwrap().to_owned();
    let child_id = parent["children"][0]["id"].as_str().unwrap().to_owned();
    let path = "/v1/p1/workspaces/default/soc/playbooks/instances/auditlogs";
    let audit = |query: &str, body: &str| {
        let response = server
            .agent
            .post(server.url(&format!("{path}?{query}")))
            .content_type("application/json;charset=UTF-8")
            .send(body)
            .unwrap();
        let request_id = response
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(request_id.ends_with("-wasp"), "{request_id}");
        read(response)
    };

    let (status, all) = audit("offset=0&limit=100", "{}");
    assert_eq!(status, 200, "{all}");
    // 2 executions; extract, enrich (the child node) and summary; 4 + 1 + 1 steps in the child.
    assert_eq!(all["count"], 2 + 3 + 6, "{all}");
    let (_, playbooks) = audit(
        "offset=0&limit=100&sort_dir=asc",
        r#"{"instance_type": "PLAYBOOK"}"#,
    );
    let rows = playbooks["audit_logs"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    // `sort_dir` in any case (issue 24).
    let (_, upper) = audit(
        "offset=0&limit=100&sort_dir=ASC",
        r#"{"instance_type": "PLAYBOOK"}"#,
    );
    assert_eq!(upper["audit_logs"], playbooks["audit_logs"]);
    let parent_row = rows
        .iter()
        .find(|r| r["instance_id"] == parent_id.as_str())
        .unwrap();
    assert_eq!(
        (
            &parent_row["status"],
            &parent_row["trigger_type"],
            &parent_row["log_level"]
        ),
        (&json!("FINISHED"), &json!("MANUAL"), &json!("DEBUG"))
    );
    assert_eq!(parent_row["action_id"], "parent-child");
    assert!(
        parent_row["input"].as_str().unwrap().contains("beaconing"),
        "{parent_row}"
    );
    let child_row = rows
        .iter()
        .find(|r| r["instance_id"] == child_id.as_str())
        .unwrap();
    assert_eq!(child_row["parent_instance_id"], parent_id.as_str());
    assert_eq!(child_row["trigger_type"], "MANUAL");
    assert!(child_row["start_time"].as_str().unwrap().ends_with('Z'));

    let (_, apps) = audit(
        "offset=0&limit=100",
        &format!(r#"{{"instance_type": "APP", "parent_instance_id": "{parent_id}"}}"#),
    );
    let names: Vec<&str> = apps["audit_logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action_id"].as_str().unwrap())
        .collect();
    assert_eq!(apps["count"], 3, "{apps}");
    assert!(
        names.contains(&"ioc-extract") && names.contains(&"ip-enrichment"),
        "{names:?}"
    );
    let (_, found) = audit(
        "offset=0&limit=100",
        r#"{"output": "185.220.101.47", "instance_type": "APP"}"#,
    );
    assert!(found["count"].as_i64().unwrap() >= 2, "{found}");
    let (_, none) = audit("offset=0&limit=100", r#"{"status": "FAILED, TERMINATED"}"#);
    assert_eq!(none["count"], 0);
    let (_, page) = audit("offset=1&limit=2&sort_key=end_time", "{}");
    assert_eq!(page["audit_logs"].as_array().unwrap().len(), 2);
    assert_eq!(page["count"], 11);
    // A playbook instance's output is the playbook's declared result (issue 24: it was
    // always empty).
    let (status, _) = server.post(
        "/api/v1/playbooks/partial-failure/run?wait=true",
        &sample_input("partial-failure"),
    );
    assert_eq!(status, 200);
    let (_, declared) = audit(
        "offset=0&limit=10",
        r#"{"instance_type": "PLAYBOOK", "action_id": "partial-failure"}"#,
    );
    let output = declared["audit_logs"][0]["output"].as_str().unwrap();
    let output: Value = serde_json::from_str(output).unwrap();
    assert!(output["ticket"].is_string(), "{declared}");

    // The seed's example request, verbatim: nothing here has its ids.
    let seed = r#"{
  "instance_type" : "APP, AOP_WORKFLOW, SCRIPT, PLAYBOOK, TASK, DEBUG",
  "action_id" : "909494e3-558e-46b6-a9eb-07a8e18ca62f",
  "action_name" : "DisabledIp",
  "instance_id" : "909494e3-558e-46b6-a9eb-07a8e18ca62f",
  "parent_instance_id" : "909494e3-558e-46b6-a9eb-07a8e18ca62f",
  "log_level" : "DEBUG INFO WARN",
  "input" : "input",
  "output" : "output",
  "error_msg" : "error_msg",
  "start_time" : "2021-01-30T23:00:00Z",
  "end_time" : "2021-01-31T23:00:00Z",
  "status" : "CREATED, RUNNING, FINISHED, RETRYING, TERMINATING, TERMINATED, FAILED",
  "trigger_type" : "DEBUG, TIMER, EVENT, MANUAL"
}"#;
    let (status, body) = audit("offset=0&limit=10", seed);
    assert_eq!(
        (status, &body),
        (200, &json!({"count": 0, "audit_logs": []}))
    );

    let words: Vec<String> = (0..100).map(|i| format!("W{i}")).collect();
    let many_words = format!(r#"{{"status": "{}"}}"#, words.join(","));
    for (query, body, code) in [
        ("limit=10", "{}", "SecMaster.20030001"),
        ("offset=9995&limit=10", "{}", "SecMaster.20030001"),
        (
            "offset=0&limit=10&sort_key=name",
            "{}",
            "SecMaster.20030009",
        ),
        ("offset=0&limit=10&sort_dir=up", "{}", "SecMaster.20030010"),
        (
            "offset=0&limit=10",
            r#"{"colour": "red"}"#,
            "SecMaster.20030001",
        ),
        (
            "offset=0&limit=10",
            r#"{"start_time": "yesterday"}"#,
            "SecMaster.20030001",
        ),
        (
            "offset=0&limit=10",
            many_words.as_str(),
            "SecMaster.20030001",
        ),
    ] {
        let (status, error) = audit(query, body);
        assert_eq!(
            (status, error["code"].as_str()),
            (400, Some(code)),
            "{query} {body}: {error}"
        );
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
}

each_store!(a_step_is_replayed_with_its_logged_input_as_a_new_linked_execution);
#[allow(
    clippy::unwrap_used,
    reason = "a test, run on each store by each_store!"
)]
fn a_step_is_replayed_with_its_logged_input_as_a_new_linked_execution(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = db.in_dir(dir.path()) else {
        return;
    };
    let server = Server::start(&db, &[]);
    let (_, original) = server.post(
        "/api/v1/playbooks/ip-enrichment/run?wait=true",
        &sample_input("ip-enrichment"),
    );
    let id = original["id"].as_str().unwrap().to_owned();

    let (status, replay) = server.post(
        &format!("/api/v1/executions/{id}/steps/classify/replay?iteration=2&wait=true"),
        "",
    );
    assert_eq!(status, 200, "{replay}");
    assert_eq!(replay["replay_of"], id.as_str());
    assert_eq!(replay["status"], "Completed");
    assert_eq!(replay["steps"][0]["input"], json!({"ip": "100.64.3.2"}));
    assert_eq!(replay["nodes"][0]["output"]["category"], "cgnat");
    // The asset the node binds still applies: 100.64.0.0/10 is the `vpn` list.
    assert_eq!(replay["nodes"][0]["output"]["lists"], json!(["vpn"]));
    let (_, linked) = server.get(&format!(
        "/api/v1/executions?count=true&tql=replayOf%20%3D%20%22{id}%22"
    ));
    assert_eq!(linked["count"], 1);

    let (_, replay) = server.post(
        &format!("/api/v1/executions/{id}/steps/classify/replay?wait=true"),
        r#"{"input": {"ip": "8.8.8.8"}}"#,
    );
    assert_eq!(replay["nodes"][0]["output"]["category"], "public");

    let (status, error) = server.post(&format!("/api/v1/executions/{id}/steps/nope/replay"), "");
    assert_eq!(status, 404);
    assert_eq!(
        error["error"],
        format!("execution `{id}` has no step run of node `nope`")
    );

    let (_, quiet) = server.post(
        "/api/v1/playbooks/ip-enrichment/run?wait=true&log_level=info",
        &sample_input("ip-enrichment"),
    );
    let quiet_id = quiet["id"].as_str().unwrap();
    let (status, error) = server.post(
        &format!("/api/v1/executions/{quiet_id}/steps/classify/replay"),
        "",
    );
    assert_eq!(status, 409);
    assert!(
        error["error"].as_str().unwrap().starts_with(&format!(
            "the input of `classify` was not logged: execution `{quiet_id}` ran at info"
        )),
        "{error}"
    );
}

#[test]
fn every_operation_in_the_openapi_document_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("wasp.db"), &[]);
    let (status, document) = server.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        // Any id: the route must exist even when the thing does not.
        let concrete = path
            .split('/')
            .map(|s| if s.starts_with('{') { "1" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().unwrap().keys() {
            operations += 1;
            if concrete.ends_with("/events") {
                continue; // a stream that stays open; tested on its own
            }
            let url = server.url(&concrete);
            let response = match method.as_str() {
                "get" => server.agent.get(&url).call(),
                "delete" => server.agent.delete(&url).call(),
                "options" => server.agent.options(&url).call(),
                "post" => server.agent.post(&url).send("{}"),
                "put" => server.agent.put(&url).send("{}"),
                other => panic!("{other}"),
            }
            .unwrap_or_else(|e| panic!("{method} {concrete}: {e}"));
            let status = response.status().as_u16();
            let body = response.into_body().read_to_string().unwrap_or_default();
            assert!(
                !body.contains("there is no route") && status != 405,
                "{method} {path}: {status} {body}"
            );
        }
    }
    assert!(operations >= 30, "{operations}");
    // Every answer it names is described, and every schema it refers to is in it.
    let text = document.to_string();
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &reference[..reference.find('"').unwrap()];
        assert!(
            schemas.contains_key(name),
            "a $ref to a missing schema `{name}`"
        );
    }
    for name in [
        "Execution",
        "StepRun",
        "PlaybookSpec",
        "AssetSpec",
        "StartedExecution",
        "Problem",
    ] {
        assert!(schemas.contains_key(name), "no schema `{name}`");
    }
    let run = &document["paths"]["/api/v1/playbooks/{id}/run"]["post"]["responses"];
    assert_eq!(
        run["202"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/StartedExecution"
    );
    assert!(run["200"]["content"]["application/json"]["schema"]["allOf"].is_array());
}

/// docs/http-api.md is what `wasp schema http-api` prints from the OpenAPI document, so
/// that the reference cannot drift from the server.
#[test]
fn the_http_api_reference_is_generated_from_the_document() {
    let output = Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(["schema", "http-api"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let generated = String::from_utf8(output.stdout).unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/http-api.md");
    let file = std::fs::read_to_string(path).unwrap();
    assert!(
        file == generated,
        "docs/http-api.md is out of date: run `cargo run -- schema http-api > docs/http-api.md`"
    );
}

#[test]
fn a_change_asked_for_by_another_sites_page_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("wasp.db"), &[]);
    let host = server.url("").trim_start_matches("http://").to_owned();
    let post = |headers: &[(&str, &str)]| {
        let mut request = server
            .agent
            .post(server.url("/api/v1/playbooks/ip-enrichment/run"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(
            request
                .content_type("text/plain")
                .send("{\"ips\": []}")
                .unwrap(),
        )
    };
    // A form post from a page elsewhere: no token is needed on loopback, so only its
    // origin gives it away.
    let (status, body) = post(&[("Origin", "http://evil.example")]);
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("evil.example"),
        "{body}"
    );
    let (status, body) = post(&[("Sec-Fetch-Site", "cross-site")]);
    assert_eq!(status, 403, "{body}");
    let (status, _) = server.get("/api/v1/executions");
    assert_eq!(status, 200, "reading is not a change");
    // The server's own page, and clients that are not browsers, may.
    let origin = format!("http://{host}");
    let (status, body) = post(&[
        ("Origin", origin.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
    ]);
    assert_eq!(status, 202, "{body}");
    let (status, body) = post(&[]);
    assert_eq!(status, 202, "{body}");
}

#[test]
fn a_kill_whose_body_arrives_late_keeps_the_connection_open() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("wasp.db"), &[]);
    let address = server.url("").trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // One connection, several requests, each body sent a moment after its head (as a
    // loaded client's may be). A server that answered before reading the body would
    // close the connection, and a client reusing it would see "peer disconnected".
    for _ in 0..3 {
        let head = format!(
            "POST /api/v1/executions/ex_none/kill HTTP/1.1\r\nHost: {address}\r\n\
             Content-Type: application/json\r\nContent-Length: 2\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.flush().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        stream.write_all(b"{}").unwrap();
        let answer = read_response(&mut stream);
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    }
}

/// The head of the next response on `stream`, its body read and dropped.
fn read_response(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut head = Vec::new();
    let mut byte = [0_u8];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("the connection stays open");
        assert_eq!(n, 1, "the server closed the connection after {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).expect("an HTTP head is text");
    let length: usize = head
        .lines()
        .find_map(|line| {
            let line = line.to_ascii_lowercase();
            line.strip_prefix("content-length:")
                .map(|n| n.trim().parse().expect("a length"))
        })
        .unwrap_or(0);
    let mut body = vec![0_u8; length];
    stream.read_exact(&mut body).expect("the announced body");
    head
}

// Issue 21: a 4,000-node chain killed the server with a stack overflow, and validation
// was quadratic on the threads serving requests.
#[test]
fn a_huge_playbook_is_refused_naming_the_bound_and_the_server_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("wasp.db"), &[]);
    for chain in [true, false] {
        let (status, error) = server.post("/api/v1/playbooks", &generated(100_000, chain));
        assert_eq!(status, 400, "{error}");
        assert!(
            error["error"]
                .as_str()
                .unwrap()
                .contains("`nodes`: the playbook has 100000 nodes; at most 5000 are allowed"),
            "{error}"
        );
    }
    let (status, created) = server.post("/api/v1/playbooks", &generated(4_000, true));
    assert_eq!(status, 201, "{created}");
    let (status, _) = server.get("/api/v1/playbooks/generated");
    assert_eq!(status, 200);
    // A JSON body past the YAML parser's budget (250,000 YAML nodes) but within every
    // bound of a playbook keeps its definition whole.
    let wide = json!({
        "id": "wide", "name": "Wide", "trigger": {"type": "manual"},
        "nodes": {"all": {"app": "transform", "action": "select",
                          "input": {"data": vec![0; 300_000], "path": "$"}}},
    });
    let (status, created) = server.post("/api/v1/playbooks", &wide.to_string());
    assert_eq!(status, 201, "{created}");
    let (_, stored) = server.get("/api/v1/playbooks/wide");
    assert_eq!(
        stored["definition"]["nodes"]["all"]["input"]["data"]
            .as_array()
            .map(Vec::len),
        Some(300_000)
    );
}

/// Send `request` (a whole HTTP/1.1 request) on a new connection; the response's head.
fn raw(server: &Server, request: &str) -> String {
    use std::io::Write;
    let address = server.url("").trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).expect("the server listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout can be set");
    stream
        .write_all(request.as_bytes())
        .expect("the server reads");
    read_response(&mut stream)
}

// Issue 21: with no token on loopback, a DNS-rebinding page controls both `Host` and
// `Origin`, so comparing them let it run playbooks and create assets.
#[test]
fn a_request_naming_another_host_is_refused_on_every_route_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("wasp.db"),
        &["--allowed-host", "wasp.test"],
    );
    let port = server.url("").rsplit_once(':').unwrap().1.to_owned();
    let request = |method: &str, path: &str, host: &str| {
        let origin = format!("http://{host}");
        raw(
            &server,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n\
                 Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            ),
        )
    };
    let evil = format!("evil.example:{port}");
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/api/v1/assets"),
        ("POST", "/api/v1/assets"),
        ("POST", "/api/v1/playbooks/ip-enrichment/run"),
        ("POST", "/api/v1/hooks/ip-enrichment"),
        ("GET", "/api/v3/playbook/executions"),
        ("POST", "/rest/action_run"),
    ] {
        let answer = request(method, path, &evil);
        assert!(
            answer.starts_with("HTTP/1.1 421"),
            "{method} {path}: {answer}"
        );
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("wasp.test:{port}"),
        format!("WASP.test:{port}"),
    ] {
        let answer = request("GET", "/api/v1/assets", &host);
        assert!(answer.starts_with("HTTP/1.1 200"), "{host}: {answer}");
    }
}

// Issue 21: idle connections were held forever; at a 1,024-descriptor limit, 1,100 of
// them left the server unable to accept anything.
#[test]
fn two_thousand_idle_connections_under_a_low_descriptor_limit_do_not_stop_the_server() {
    let descriptors = wasp_runtime::api::raise_descriptor_limit().unwrap_or(u64::MAX);
    assert!(
        descriptors >= 2_200,
        "this test holds 2,000 connections and may open only {descriptors} files: raise `ulimit -Hn`"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_descriptor_limit(
        &dir.path().join("wasp.db"),
        &["--header-timeout", "1s"],
        1_024,
    );
    let address: std::net::SocketAddr = server
        .url("")
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let idle: Vec<tokio::net::TcpStream> = runtime.block_on(async {
        let connects = (0..2_000).map(|_| {
            tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::TcpStream::connect(address),
            )
        });
        futures_util::future::join_all(connects)
            .await
            .into_iter()
            .filter_map(|connected| connected.ok().and_then(Result::ok))
            .collect()
    });
    assert!(
        idle.len() > 1_024,
        "only {} connections were made",
        idle.len()
    );
    // They stay open, sending nothing, while a client asks for something.
    let (status, _) = server.get("/api/v1/playbooks");
    assert_eq!(status, 200);
    assert!(
        !server.log().contains("Too many open files"),
        "{}",
        server.log()
    );
    drop(idle);
}

// Issue 21: `wasp serve` answered nothing for 41 s while it compiled its apps.
#[test]
fn the_server_answers_while_its_apps_load_and_runs_them_once_loaded() {
    let dir = tempfile::tempdir().unwrap();
    // An empty cache: every app is compiled, which takes seconds.
    let cache = dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    let server = Server::start_unready(
        &dir.path().join("wasp.db"),
        &[],
        &[("WASP_CACHE_DIR", cache)],
    );
    let (status, page) = server.get("/api/v1/executions");
    assert_eq!(status, 200, "the store is served at once: {page}");
    // Up, not yet ready.
    let probe = |path: &str| {
        let mut response = server.agent.get(server.url(path)).call().unwrap();
        let body = response.body_mut().read_to_string().unwrap();
        (response.status().as_u16(), body)
    };
    assert_eq!(probe("/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(probe("/readyz"), (503, "not ready\n".to_owned()));
    let response = server
        .agent
        .post(server.url("/api/v1/playbooks/ip-enrichment/run"))
        .content_type("application/json")
        .send(sample_input("ip-enrichment"))
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, refused) = read(response);
    assert_eq!(
        (status, &refused["error"]),
        (
            503,
            &json!("wasp is still loading its apps and playbooks; ask again in a moment")
        )
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    while !server.log().contains("wasp ready: ") {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(probe("/readyz"), (200, "ready\n".to_owned()));
    let (status, started) = server.post(
        "/api/v1/playbooks/ip-enrichment/run?wait=true",
        &sample_input("ip-enrichment"),
    );
    assert_eq!(
        (status, &started["status"]),
        (200, &json!("Completed")),
        "{started}"
    );
    let (status, _) = server.get("/api/v1/playbooks/no-such-playbook");
    assert_eq!(status, 404, "once loaded, what is not there is not found");
}
