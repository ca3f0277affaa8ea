//! Playbooks that start themselves, end to end against the real server: a signed
//! webhook (and a badly signed one refused), events matched by TQL conditions, a timer
//! on a short interval, the queue under a per-playbook concurrency limit, conditions
//! refused at save time, and the run statistics served with the playbook.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::server::Server;

fn server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("wasp.db"), &[]);
    (dir, server)
}

/// Create playbook `id` with the given top-level `settings` (YAML lines) and one step
/// that joins `${trigger…}` text.
fn create(server: &Server, id: &str, settings: &str) {
    let yaml = format!(
        "id: {id}\nname: {id}\nlog_level: debug\n{settings}\nnodes:\n  note:\n    app: transform\n    \
         action: join\n    input: {{ items: [\"fired\"], separator: \" \" }}\nedges: []\n"
    );
    let (status, body) = server.post("/api/v1/playbooks", &yaml);
    assert_eq!(status, 201, "{body}");
}

fn sign(secret: &[u8], body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A server whose secrets directory is the test's directory.
fn server_with_secrets(extra: &[&str]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("temp dir");
    let secrets = dir.path().to_str().expect("a UTF-8 path").to_owned();
    let mut args = vec!["--secrets-dir", secrets.as_str()];
    args.extend_from_slice(extra);
    let server = Server::start(&dir.path().join("wasp.db"), &args);
    (dir, server)
}

#[test]
fn a_signed_webhook_starts_its_playbook_and_a_bad_signature_is_refused() {
    let (dir, server) = server_with_secrets(&[]);
    std::fs::write(dir.path().join("hook.secret"), "s3cret-hook-key\n").unwrap();
    create(
        &server,
        "hooked",
        "trigger: { type: webhook, secret: \"file:hook.secret\" }",
    );
    let body = r#"{"alert": {"id": 42, "rule": "impossible travel"}}"#;
    let post = |signature: Option<&str>| {
        let mut request = server
            .agent
            .post(server.url("/api/v1/hooks/hooked?source=siem&wait=true"))
            .header("Content-Type", "application/json")
            .header("Authorization", "Bearer not-for-the-record");
        if let Some(signature) = signature {
            request = request.header("X-Wasp-Signature-256", signature);
        }
        let mut response = request.send(body).unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_json::<Value>().unwrap())
    };

    let (status, execution) = post(Some(&sign(b"s3cret-hook-key", body)));
    assert_eq!(status, 200, "{execution}");
    assert_eq!(execution["status"], "Completed");
    assert_eq!(execution["trigger_type"], "WEBHOOK");
    let trigger = &execution["trigger"];
    assert_eq!(trigger["body"]["alert"]["id"], 42, "{trigger}");
    assert_eq!(trigger["query"], json!({"source": "siem"}), "{trigger}");
    assert_eq!(trigger["headers"]["content-type"], "application/json");
    assert!(
        trigger["headers"].get("authorization").is_none(),
        "{trigger}"
    );
    assert!(
        trigger["headers"].get("x-wasp-signature-256").is_none(),
        "{trigger}"
    );

    for (signature, why) in [
        (None, "is missing"),
        (Some(sign(b"another-key", body)), "does not match"),
        (Some("sha256=zz".to_owned()), "not hexadecimal"),
        (Some("md5=abc".to_owned()), "sha256="),
    ] {
        let (status, error) = post(signature.as_deref());
        assert_eq!(status, 403, "{error}");
        assert!(
            error["error"].as_str().unwrap().contains(why),
            "{why}: {error}"
        );
    }
    let (_, page) =
        server.get("/api/v1/executions?tql=playbookXid%20%3D%20%22hooked%22&count=true");
    assert_eq!(page["count"], 1, "refused calls start nothing: {page}");

    // A playbook started otherwise is not a webhook, and the caller (anyone) cannot
    // tell it from one that does not exist (issue 21).
    let (status, error) = server.post("/api/v1/hooks/phishing-triage", "{}");
    assert_eq!(
        (status, &error["error"]),
        (404, &json!("there is no webhook `phishing-triage`"))
    );
    let (status, error) = server.post("/api/v1/hooks/nothing-here", "{}");
    assert_eq!(
        (status, &error["error"]),
        (404, &json!("there is no webhook `nothing-here`"))
    );

    // A secret that can no longer be read: the hook answers 503, and only the log says why.
    std::fs::remove_file(dir.path().join("hook.secret")).unwrap();
    let (status, error) = post(Some(&sign(b"s3cret-hook-key", body)));
    assert_eq!(status, 503, "{error}");
    assert!(
        !error["error"].as_str().unwrap().contains("hook.secret"),
        "{error}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("a webhook's secret cannot be read") {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

// Issue 21: a webhook secret sent through the API could name any file or variable of
// the server, and the hook's 202 or 403 then confirmed guesses of its content.
#[test]
fn a_webhook_secret_sent_through_the_api_names_only_what_an_api_asset_may() {
    let (dir, server) = server_with_secrets(&[]);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("private"), "root-only").unwrap();
    std::os::unix::fs::symlink(outside.path().join("private"), dir.path().join("escape")).unwrap();
    for (secret, why) in [
        (
            "file:/etc/passwd",
            "must be a plain relative path inside the secrets directory",
        ),
        (
            "file:../private",
            "must be a plain relative path inside the secrets directory",
        ),
        (
            "env:HOME",
            "only from environment variables named WASP_SECRET_*, not `HOME`",
        ),
        (
            "file:escape",
            "leads out of the secrets directory (a symbolic link)",
        ),
        ("file:missing", "cannot read the secret file `missing`"),
        (
            "env:WASP_SECRET_UNSET_HERE",
            "the environment variable `WASP_SECRET_UNSET_HERE` is not set",
        ),
    ] {
        let yaml = format!(
            "id: guess\nname: guess\ntrigger: {{ type: webhook, secret: \"{secret}\" }}\nnodes:\n  \
             note: {{ app: transform, action: join, input: {{ items: [\"x\"] }} }}\n"
        );
        let (status, error) = server.post("/api/v1/playbooks", &yaml);
        assert_eq!(status, 400, "{secret}: {error}");
        let message = error["error"].as_str().unwrap();
        assert!(message.starts_with("`trigger.secret`: "), "{message}");
        assert!(message.contains(why), "{secret}: {message}");
    }
    assert_eq!(
        server.get("/api/v1/playbooks/guess").0,
        404,
        "nothing was saved"
    );
}

#[test]
fn events_fire_the_enabled_playbooks_whose_conditions_all_hold() {
    let (_dir, server) = server();
    create(
        &server,
        "severe-alerts",
        "trigger: { type: event }\nauto_execute: true\ntrigger_conditions:\n  \
         - type = \"alert\"\n  - severity >= 7\n  - tags IN (\"phishing\", \"malware\")",
    );
    create(
        &server,
        "from-edr",
        "trigger: { type: event }\nauto_execute: true\ntrigger_conditions:\n  \
         - source.product STARTSWITH \"edr\"\n  - host.owner ISNULL",
    );
    create(
        &server,
        "switched-off",
        "trigger: { type: event }\nauto_execute: true\nenabled: false",
    );
    create(&server, "not-automatic", "trigger: { type: event }");

    let fire = |event: Value| {
        let (status, body) = server.post("/api/v1/events", &event.to_string());
        assert_eq!(status, 202, "{body}");
        let mut fired: Vec<String> = body["executions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["playbook"].as_str().unwrap().to_owned())
            .collect();
        fired.sort();
        (fired, body)
    };
    let (fired, body) = fire(json!({
        "type": "alert", "severity": 9, "tags": ["phishing"],
        "source": {"product": "EDR-North"},
    }));
    assert_eq!(fired, ["from-edr", "severe-alerts"], "{body}");
    assert_eq!(body["matched"], 2);
    let id = body["executions"][0]["execution_id"].as_str().unwrap();
    let execution = server.wait_for_end(id);
    assert_eq!(execution["trigger_type"], "EVENT", "{execution}");
    let (status, audit) = server.post(
        "/v1/p1/workspaces/default/soc/playbooks/instances/auditlogs?offset=0&limit=10",
        r#"{"instance_type": "PLAYBOOK", "trigger_type": "EVENT"}"#,
    );
    assert_eq!(status, 200, "{audit}");
    assert_eq!(
        audit["count"], 2,
        "both executions the event started: {audit}"
    );
    assert_eq!(
        execution["trigger"]["type"], "alert",
        "the event is the payload"
    );

    // A number too small, a list without the tag, a field present that must be absent.
    let (fired, _) = fire(json!({"type": "alert", "severity": 6, "tags": ["phishing"]}));
    assert_eq!(fired, Vec::<String>::new());
    let (fired, _) = fire(json!({"type": "alert", "severity": "8", "tags": ["benign"]}));
    assert_eq!(fired, Vec::<String>::new());
    let (fired, _) = fire(json!({"source": {"product": "edr"}, "host": {"owner": "bob"}}));
    assert_eq!(fired, Vec::<String>::new());
    // Missing fields match nothing but ISNULL; a numeric string counts as a number.
    let (fired, _) = fire(json!({"type": "alert", "severity": "7", "tags": ["malware"]}));
    assert_eq!(fired, ["severe-alerts"]);

    for bad in ["[1, 2]", "not json"] {
        let (status, error) = server.post("/api/v1/events", bad);
        assert_eq!(status, 400, "{error}");
    }
}

#[test]
fn a_bad_condition_or_schedule_is_refused_at_save_time_with_its_position() {
    let (_dir, server) = server();
    let yaml = "id: broken\nname: Broken\ntrigger: { type: event }\nauto_execute: true\n\
                trigger_conditions:\n  - severity >= 7\n  - type = \nnodes:\n  \
                note: { app: transform, action: join, input: { items: [\"x\"] } }\n";
    let (status, error) = server.post("/api/v1/playbooks", yaml);
    assert_eq!(status, 400, "{error}");
    let message = error["error"].as_str().unwrap();
    assert!(
        message.contains("trigger_conditions[1]") && message.contains("position 7"),
        "{message}"
    );
    let yaml = "id: broken\nname: Broken\ntrigger: { type: timer, cron: \"* * 31 2 *\" }\nnodes:\n  \
                note: { app: transform, action: join, input: { items: [\"x\"] } }\n";
    let (status, error) = server.post("/api/v1/playbooks", yaml);
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("trigger.cron"),
        "{error}"
    );
    let (status, _) = server.get("/api/v1/playbooks/broken");
    assert_eq!(status, 404, "nothing was saved");
}

#[test]
fn a_timer_fires_on_its_interval_and_shows_its_next_runs() {
    let (_dir, server) = server();
    create(&server, "ticking", "trigger: { type: timer, every: 1s }");
    let (_, playbook) = server.get("/api/v1/playbooks/ticking");
    let next = playbook["trigger"]["next_runs"].as_array().unwrap();
    assert_eq!(next.len(), 5, "{playbook}");
    assert_eq!(playbook["trigger"]["every"], "1s");

    let query = "/api/v1/executions?tql=playbookXid%20%3D%20%22ticking%22&count=true";
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        let (_, page) = server.get(query);
        if page["count"].as_u64().unwrap() >= 2 || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(page["count"].as_u64().unwrap() >= 2, "{page}");
    assert!(
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["trigger_type"] == "TIMER"),
        "{page}"
    );
    // SecMaster's view reports the timer in its own word.
    let (status, audit) = server.post(
        "/v1/p1/workspaces/default/soc/playbooks/instances/auditlogs?offset=0&limit=10",
        r#"{"instance_type": "PLAYBOOK", "trigger_type": "TIMER"}"#,
    );
    assert_eq!(status, 200, "{audit}");
    assert!(audit["count"].as_u64().unwrap() >= 2, "{audit}");

    // Disabled, it stops firing and shows no next run.
    let yaml = "id: ticking\nname: ticking\nenabled: false\ntrigger: { type: timer, every: 1s }\n\
                nodes:\n  note: { app: transform, action: join, input: { items: [\"x\"] } }\n";
    let response = server
        .agent
        .put(server.url("/api/v1/playbooks/ticking"))
        .send(yaml)
        .unwrap();
    assert_eq!(response.status(), 200);
    std::thread::sleep(Duration::from_millis(300));
    let (_, before) = server.get(query);
    std::thread::sleep(Duration::from_millis(2_500));
    let (_, after) = server.get(query);
    let ended = |page: &Value| page["count"].as_u64().unwrap();
    assert_eq!(
        ended(&before),
        ended(&after),
        "a disabled timer does not fire"
    );
    let (_, playbook) = server.get("/api/v1/playbooks/ticking");
    assert_eq!(playbook["trigger"]["next_runs"], json!([]));
    assert_eq!(playbook["enabled"], false);
    let (status, error) = server.post("/api/v1/playbooks/ticking/run", "{}");
    assert_eq!(status, 409, "{error}");
}

#[test]
fn over_its_limit_a_playbook_queues_executions_and_starts_them_in_order() {
    let (_dir, server) = server();
    let yaml = "id: one-at-a-time\nname: One at a time\nmax_concurrent: 1\n\
                trigger: { type: manual }\nnodes:\n  \
                nap: { app: chaos, action: sleep, input: { ms: 400 } }\n";
    let (status, body) = server.post("/api/v1/playbooks", yaml);
    assert_eq!(status, 201, "{body}");
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let (status, started) = server.post("/api/v1/playbooks/one-at-a-time/run", "{}");
            assert_eq!(status, 202, "{started}");
            started["execution_id"].as_str().unwrap().to_owned()
        })
        .collect();
    let (_, second) = server.get(&format!("/api/v1/executions/{}", ids[1]));
    assert_eq!(second["status"], "Queued", "{second}");
    let ended: Vec<Value> = ids
        .iter()
        .map(|id| wait_for_completion(&server, id))
        .collect();
    let at =
        |e: &Value, f: &str| chrono::DateTime::parse_from_rfc3339(e[f].as_str().unwrap()).unwrap();
    for pair in ended.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            at(b, "started_at") >= at(a, "completed_at"),
            "one at a time, in order: {a} then {b}"
        );
    }
    let waited = |e: &Value| (at(e, "started_at") - at(e, "queued_at")).num_milliseconds();
    assert!(
        waited(&ended[2]) >= 600,
        "the third waited for two naps: {}",
        ended[2]
    );

    // The statistics served with the playbook.
    let (_, playbook) = server.get("/api/v1/playbooks/one-at-a-time");
    let stats = &playbook["run_stats"];
    assert_eq!(stats["total"], 3, "{stats}");
    assert_eq!(stats["by_status"]["Completed"], 3, "{stats}");
    assert!(stats["p95_duration_ms"].as_i64().unwrap() >= 400, "{stats}");
    assert!(
        stats["mean_duration_ms"].as_i64().unwrap() >= 400,
        "{stats}"
    );
    assert_eq!(playbook["last_run_id"].as_str(), Some(ids[2].as_str()));
}

fn wait_for_completion(server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, execution) = server.get(&format!("/api/v1/executions/{id}"));
        if !matches!(execution["status"].as_str(), Some("Running" | "Queued")) {
            assert_eq!(execution["status"], "Completed", "{execution}");
            return execution;
        }
        assert!(Instant::now() < deadline, "{execution}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn on_a_server_with_a_token_a_signature_suffices_and_an_unsigned_hook_needs_the_token() {
    let (dir, server) = server_with_secrets(&["--token", "api-token-0123456789"]);
    std::fs::write(dir.path().join("hook.secret"), "another-hook-key").unwrap();
    for (id, trigger) in [
        (
            "signed",
            "trigger: { type: webhook, secret: \"file:hook.secret\" }",
        ),
        ("unsigned", "trigger: { type: webhook }"),
    ] {
        create(&server, id, trigger);
    }
    let body = r#"{"ok": true}"#;
    let post = |path: &str, headers: &[(&str, &str)]| {
        let mut request = server
            .agent
            .post(server.url(path))
            .header("Content-Type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.send(body).unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_json::<Value>().unwrap())
    };
    let signature = sign(b"another-hook-key", body);
    let signed = [("X-Hub-Signature-256", signature.as_str())];
    let (status, started) = post("/api/v1/hooks/signed", &signed);
    assert_eq!(status, 202, "the signature is the credential: {started}");
    // Reading the record back (`wait`) is the API's business: it needs the token.
    let (status, _) = post("/api/v1/hooks/signed?wait=true", &signed);
    assert_eq!(status, 401);
    let (status, _) = post("/api/v1/hooks/unsigned", &[]);
    assert_eq!(status, 401);
    let bearer = ("Authorization", "Bearer api-token-0123456789");
    let (status, started) = post("/api/v1/hooks/unsigned", &[bearer]);
    assert_eq!(status, 202, "{started}");
    // A form another site's page posts is refused before the token is asked for.
    let (status, _) = post(
        "/api/v1/hooks/unsigned",
        &[bearer, ("Origin", "http://evil.example")],
    );
    assert_eq!(status, 403);
}

// Issue 23: a playbook could not answer the system that called it (n8n's "Respond to
// Webhook"): the caller got a record with no node outputs at the default level.
#[test]
fn a_webhook_responds_with_the_playbooks_output_on_its_signature_alone() {
    let (dir, server) = server_with_secrets(&["--token", "api-token-0123456789"]);
    std::fs::write(dir.path().join("hook.secret"), "answer-hook-key").unwrap();
    create(
        &server,
        "answers",
        "trigger: { type: webhook, secret: \"file:hook.secret\" }\n\
         output: { said: \"${note.output.text}\", alert: \"${trigger.body.id}\" }",
    );
    create(
        &server,
        "silent",
        "trigger: { type: webhook, secret: \"file:hook.secret\" }",
    );
    // The playbook chooses the status: a number, or a template over what ran.
    create(
        &server,
        "created",
        "trigger: { type: webhook, secret: \"file:hook.secret\" }\n\
         output: { alert: \"${trigger.body.id}\" }\noutput_status: 201",
    );
    create(
        &server,
        "misstatused",
        "trigger: { type: webhook, secret: \"file:hook.secret\" }\n\
         output: { alert: \"${trigger.body.id}\" }\noutput_status: \"${trigger.body.id}\"",
    );
    let body = r#"{"id": 7}"#;
    let post = |path: &str| {
        let mut response = server
            .agent
            .post(server.url(path))
            .header("Content-Type", "application/json")
            .header("X-Wasp-Signature-256", sign(b"answer-hook-key", body))
            .send(body)
            .unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_json::<Value>().unwrap())
    };
    // The result is the whole body; the signature is the only credential it needs.
    let (status, answer) = post("/api/v1/hooks/answers?respond=output");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"said": "fired", "alert": 7}));
    // A playbook that declares no result says so, with the execution to look at.
    let (status, answer) = post("/api/v1/hooks/silent?respond=output");
    assert_eq!(status, 502, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().ends_with(
            "ended Completed with no output: the playbook declares no `output:` to respond with"
        ),
        "{answer}"
    );
    assert!(answer["execution_id"].as_str().unwrap().starts_with("ex_"));
    let (status, answer) = post("/api/v1/hooks/created?respond=output");
    assert_eq!((status, answer), (201, json!({"alert": 7})));
    // A status that is not one is not guessed at: 502, saying what it rendered to.
    let (status, answer) = post("/api/v1/hooks/misstatused?respond=output");
    assert_eq!(status, 502, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .ends_with("`output_status`: is 7; an HTTP status here is 200 to 599"),
        "{answer}"
    );
    // The whole record still needs the token; another answer is refused.
    assert_eq!(post("/api/v1/hooks/answers?wait=true").0, 401);
    let (status, answer) = post("/api/v1/hooks/answers?respond=record");
    assert_eq!(status, 400, "{answer}");
}

#[test]
fn a_queued_execution_killed_while_it_waits_ends_killed_and_frees_its_place() {
    let (_dir, server) = server();
    let yaml = "id: single\nname: Single\nmax_concurrent: 1\ntrigger: { type: manual }\nnodes:\n  \
                nap: { app: chaos, action: sleep, input: { ms: 300 } }\n";
    let (status, body) = server.post("/api/v1/playbooks", yaml);
    assert_eq!(status, 201, "{body}");
    let run = || {
        let (status, started) = server.post("/api/v1/playbooks/single/run", "{}");
        assert_eq!(status, 202, "{started}");
        started
    };
    let first = run();
    let second = run();
    assert_eq!(second["status"], "Queued", "{second}");
    let second = second["execution_id"].as_str().unwrap();
    let (status, _) = server.post(&format!("/api/v1/executions/{second}/kill"), "");
    assert!(status < 300, "{status}");
    let killed = server.wait_for_end(second);
    assert_eq!(killed["status"], "Killed", "{killed}");
    wait_for_completion(&server, first["execution_id"].as_str().unwrap());
    // Its place was given back: the next one runs.
    let third = run();
    wait_for_completion(&server, third["execution_id"].as_str().unwrap());
}
