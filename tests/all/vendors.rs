//! Issue 24: the vendors' own Python clients against a live `wasp serve` with keys of two
//! tenants: ThreatConnect's tcex (token and HMAC), Splunk SOAR's soarsdk (token and basic
//! auth) and Huawei Cloud's SecMaster SDK (AK/SK signatures and `X-Auth-Token`). Each logs
//! in, filters, pages through more than one page, and sees its own tenant's records only;
//! wrong credentials get the vendor's own error shape.
//!
//! The clients, pinned in `tests/vendor-clients/requirements.txt`, are installed into a
//! virtual environment under the build's tools directory on first use. Without Python or
//! the package index these tests say so and pass, unless `WASP_VENDOR_CLIENTS=required`
//! (as CI sets it).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::server::{Db, Server, each_store, keys};

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vendor-clients")
}

/// The virtual environment's Python with the pinned clients installed (made, or remade
/// when the pins changed), or why there is none.
fn install() -> Result<PathBuf, String> {
    let venv = PathBuf::from(env!("WASP_TOOLS_DIR")).join("vendor-clients");
    let python = venv.join("bin/python");
    let requirements = clients_dir().join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).map_err(|e| e.to_string())?;
    let stamp = venv.join("installed-requirements.txt");
    if python.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|had| had == wanted) {
        return Ok(python);
    }
    let run = |command: &mut Command| -> Result<(), String> {
        let output = command
            .output()
            .map_err(|e| format!("{command:?} did not start: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{command:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    };
    run(Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv))?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements))?;
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    Ok(python)
}

/// The clients' Python, or `None` (said why) when they cannot be installed and are not
/// required.
fn python() -> Option<PathBuf> {
    match install() {
        Ok(python) => Some(python),
        Err(missing) if std::env::var("WASP_VENDOR_CLIENTS").is_ok_and(|v| v == "required") => {
            panic!("the vendors' clients are required: {missing}")
        }
        Err(missing) => {
            eprintln!("skipped: {missing} (WASP_VENDOR_CLIENTS=required makes this a failure)");
            None
        }
    }
}

/// Run the client script `script` with `env`: the JSON object it prints.
fn client(python: &Path, server: &Server, script: &str, env: &[(&str, &str)]) -> Value {
    let output = Command::new(python)
        .arg(clients_dir().join(script))
        .env("WASP_URL", server.url(""))
        .envs(env.iter().copied())
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} {env:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}"))
}

/// That `refused` (a client's JSON) is `status` with SecMaster's `code`.
fn assert_refused(refused: &Value, status: u16, code: &str) {
    assert_eq!(
        (&refused["status"], &refused["code"]),
        (&json!(status), &json!(code)),
        "{refused}"
    );
}

/// A key's id, from its token.
fn key_id(token: &str) -> &str {
    token
        .trim_start_matches("wasp_")
        .rsplit_once('_')
        .expect("a key's token")
        .0
}

const PLAYBOOK: &str = "id: {id}\nname: Count\ntrigger: { type: manual }\nnodes:\n  \
    n: { app: transform, action: count, input: { items: [1, 2] } }\n";

each_store!(the_vendors_own_clients_log_in_filter_and_page_within_their_tenant);
#[allow(
    clippy::unwrap_used,
    reason = "a test, run on each store by each_store!"
)]
fn the_vendors_own_clients_log_in_filter_and_page_within_their_tenant(db: Db) {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = db.in_dir(dir.path()) else {
        return;
    };
    let key_file = dir.path().join("wasp.key");
    let key_file = key_file.to_str().unwrap();
    let acme = keys(&db, &["create", "--tenant", "acme", "--role", "operator"]);
    let globex = keys(&db, &["create", "--tenant", "globex", "--role", "operator"]);
    let server = Server::start(
        &db,
        &["--token", "bootstrap-0123456789", "--key-file", key_file],
    );
    // The server made the key file; the keys' signing secrets derive from it.
    let secret = |token: &str| {
        keys(
            &db,
            &["signing-secret", key_id(token), "--key-file", key_file],
        )
    };
    let (acme_secret, globex_secret) = (secret(&acme), secret(&globex));
    assert_eq!(acme_secret.len(), 64);

    // Five executions of acme's, one of globex's, through the native API.
    let as_ = |token: &str, method: &str, path: &str, body: &str| {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(server.url(path))
            .header("Authorization", format!("Bearer {token}"))
            .body(body.to_owned())
            .unwrap();
        crate::server::read(server.agent.run(request).unwrap())
    };
    let runs = |token: &str, id: &str, times: usize| -> Vec<i64> {
        let (status, made) = as_(
            token,
            "POST",
            "/api/v1/playbooks",
            &PLAYBOOK.replace("{id}", id),
        );
        assert_eq!(status, 201, "{made}");
        (0..times)
            .map(|_| {
                let (_, ran) = as_(
                    token,
                    "POST",
                    &format!("/api/v1/playbooks/{id}/run?wait=true"),
                    "{}",
                );
                assert_eq!(ran["status"], "Completed", "{ran}");
                ran["num"].as_i64().unwrap()
            })
            .collect()
    };
    let mut acme_runs = runs(&acme, "acme-count", 5);
    let globex_runs = runs(&globex, "globex-count", 1);
    acme_runs.reverse(); // newest first, as lists answer

    // ThreatConnect: a TQL filter built by tcex, counted, paged through `next` links, by
    // token and by HMAC signature.
    for credentials in [
        vec![("TC_TOKEN", acme.as_str())],
        vec![
            ("TC_ACCESS_ID", key_id(&acme)),
            ("TC_SECRET_KEY", &acme_secret),
        ],
    ] {
        let read = client(&python, &server, "threatconnect.py", &credentials);
        assert_eq!(read["count"], 5, "{read}");
        assert_eq!(read["ids"], json!(acme_runs), "{read}");
        assert!(
            read["requests"].as_array().unwrap().len() >= 3,
            "more than one page: {read}"
        );
    }
    let read = client(
        &python,
        &server,
        "threatconnect.py",
        &[("TC_TOKEN", &globex)],
    );
    assert_eq!(
        (&read["count"], &read["ids"]),
        (&json!(1), &json!(globex_runs)),
        "{read}"
    );
    for credentials in [
        vec![("TC_TOKEN", "wasp_key_nothing_0000"), ("TC_MODE", "raw")],
        vec![
            ("TC_ACCESS_ID", key_id(&acme)),
            ("TC_SECRET_KEY", &globex_secret),
            ("TC_MODE", "raw"),
        ],
    ] {
        let refused = client(&python, &server, "threatconnect.py", &credentials);
        assert_eq!(refused["status"], 401, "{refused}");
        assert_eq!(
            (&refused["body"]["errCode"], &refused["body"]["status"]),
            (&json!("0x1001"), &json!("Error")),
            "{refused}"
        );
    }

    // Splunk SOAR: an action run posted and waited for, then the filtered list paged,
    // by token and by basic auth (the token as the password).
    let by_token = client(&python, &server, "soar.py", &[("SOAR_TOKEN", &acme)]);
    assert_eq!(by_token["status"], "success", "{by_token}");
    assert_eq!(
        by_token["app_runs"].as_array().unwrap().len(),
        1,
        "{by_token}"
    );
    let by_password = client(
        &python,
        &server,
        "soar.py",
        &[
            ("SOAR_LOGIN", "basic"),
            ("SOAR_USER", key_id(&acme)),
            ("SOAR_PASSWORD", &acme),
        ],
    );
    assert_eq!(by_password["status"], "success", "{by_password}");
    assert_eq!(
        by_password["ids"],
        json!([&by_password["posted"], &by_token["posted"]]),
        "both of acme's runs, a page each: {by_password}"
    );
    assert_eq!(by_password["pages"], json!([2, 2]), "{by_password}");
    // soarsdk's own password login: basic auth once, then the session's cookies (and
    // its CSRF token on each change).
    let logged_in = client(
        &python,
        &server,
        "soar.py",
        &[
            ("SOAR_LOGIN", "password"),
            ("SOAR_USER", "analyst"),
            ("SOAR_PASSWORD", &acme),
        ],
    );
    assert_eq!(logged_in["status"], "success", "{logged_in}");
    assert_eq!(
        logged_in["cookies"],
        json!(["csrftoken", "sessionid"]),
        "{logged_in}"
    );
    assert_eq!(logged_in["ids"].as_array().unwrap().len(), 3, "{logged_in}");
    let theirs = client(&python, &server, "soar.py", &[("SOAR_TOKEN", &globex)]);
    assert_eq!(theirs["ids"], json!([&theirs["posted"]]), "{theirs}");
    let refused = client(
        &python,
        &server,
        "soar.py",
        &[("SOAR_TOKEN", "not-a-token-at-all")],
    );
    assert_eq!(
        (&refused["status"], &refused["body"]["failed"]),
        (&json!(401), &json!(true)),
        "{refused}"
    );

    // SecMaster: the audit logs filtered and paged, signed with the key's AK/SK, or
    // with a token; the workspace is the tenant.
    let ids_of = |nums: &[i64]| -> Vec<String> {
        nums.iter()
            .map(|num| {
                as_(&acme, "GET", &format!("/api/v1/executions/{num}"), "").1["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let mut acme_ids = ids_of(&acme_runs);
    acme_ids.sort_unstable();
    for credentials in [
        vec![
            ("SM_AK", key_id(&acme)),
            ("SM_SK", acme_secret.as_str()),
            ("SM_WORKSPACE", "acme"),
        ],
        vec![("SM_TOKEN", acme.as_str()), ("SM_WORKSPACE", "acme")],
    ] {
        let read = client(&python, &server, "secmaster.py", &credentials);
        assert_eq!(read["count"], 5, "{read}");
        // Newest first by start time, which two runs in one millisecond share.
        let mut ids: Vec<&str> = read["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap())
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, acme_ids, "{read}");
        assert_eq!(read["pages"], json!([2, 2, 1]), "{read}");
    }
    let signed_as = |secret: &str, workspace: &str| {
        let credentials = [
            ("SM_AK", key_id(&acme)),
            ("SM_SK", secret),
            ("SM_WORKSPACE", workspace),
        ];
        client(&python, &server, "secmaster.py", &credentials)
    };
    let refused = signed_as(&acme_secret, "globex");
    assert_refused(&refused, 400, "SecMaster.20010001");
    let refused = signed_as(&globex_secret, "acme");
    assert_refused(&refused, 401, "APIGW.0301");
    assert!(refused["request_id"].is_string(), "{refused}");

    // Basic auth with a wrong password is refused in Splunk's shape.
    let wrong = ureq::http::Request::builder()
        .uri(server.url("/rest/version"))
        .header("Authorization", "Basic YWRtaW46bm90LWEtdG9rZW4=")
        .body(String::new())
        .unwrap();
    let (status, refused) = crate::server::read(server.agent.run(wrong).unwrap());
    assert_eq!(
        (status, &refused["failed"]),
        (401, &json!(true)),
        "{refused}"
    );

    // A revoked key's signatures are refused from then on.
    let revoke = format!("/api/v1/keys/{}", key_id(&acme));
    assert_eq!(as_("bootstrap-0123456789", "DELETE", &revoke, "").0, 200);
    let hmac = [
        ("TC_ACCESS_ID", key_id(&acme)),
        ("TC_SECRET_KEY", &acme_secret),
        ("TC_MODE", "raw"),
    ];
    let refused = client(&python, &server, "threatconnect.py", &hmac);
    assert_eq!(refused["status"], 401, "{refused}");
    let refused = signed_as(&acme_secret, "acme");
    assert_refused(&refused, 401, "APIGW.0301");
}
