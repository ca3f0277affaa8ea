//! Issue 24: tenants. Keys of two tenants against one server: each sees, runs and
//! changes only its own records, and another tenant's record answers 404 (in each
//! view's shape), as a missing one does.

use std::path::Path;

use serde_json::{Value, json};

use crate::server::{SPIN, Server, SseReader, keys, read};

/// A key of `tenant` with `role`, made by `wasp keys create`: its token.
fn key(db: &Path, tenant: &str, role: &str) -> String {
    let name = format!("{tenant}-{role}");
    keys(
        db,
        &[
            "create", "--tenant", tenant, "--role", role, "--name", &name,
        ],
    )
}

/// Calls as one key.
struct As<'a> {
    server: &'a Server,
    token: String,
}

impl As<'_> {
    fn call(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let request = request(method, &self.server.url(path), &self.token, body);
        read(self.server.agent.run(request).expect("the server answers"))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, "")
    }

    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.call("POST", path, body)
    }
}

fn request(method: &str, url: &str, token: &str, body: &str) -> ureq::http::Request<String> {
    ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .expect("a well-formed request")
}

const PLAYBOOK: &str = "id: acme-count\nname: Acme count\ntrigger: { type: manual }\n\
    log_level: debug\nnodes:\n  n: { app: transform, action: count, input: { items: [1, 2] } }\n";

#[test]
fn each_tenant_sees_runs_and_changes_only_its_own_records() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wasp.db");
    let keys = [
        ("acme", "operator"),
        ("acme", "admin"),
        ("globex", "operator"),
        ("globex", "admin"),
    ]
    .map(|(tenant, role)| key(&db, tenant, role));
    let server = Server::start(&db, &["--token", "bootstrap-0123456789"]);
    let [acme, acme_admin, globex, globex_admin] = keys.map(|token| As {
        server: &server,
        token,
    });

    // Globex listens to every event it may hear while acme runs.
    let mut heard = SseReader::open_as(&server, "/api/v1/events", Some(&globex.token));

    // Acme makes a playbook and runs it; the execution is acme's.
    let (status, made) = acme.post("/api/v1/playbooks", PLAYBOOK);
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["tenant_id"], "acme");
    let (status, ran) = acme.post("/api/v1/playbooks/acme-count/run?wait=true", "{}");
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["tenant_id"], "acme");
    let (id, num) = (ran["id"].as_str().unwrap(), ran["num"].as_i64().unwrap());
    let (status, listed) = acme.get("/api/v1/executions");
    assert_eq!((status, listed["data"][0]["id"].as_str()), (200, Some(id)));

    // Globex sees none of it, by either id, in any view.
    let (_, listed) = globex.get("/api/v1/executions?count=true");
    assert_eq!((&listed["count"], &listed["data"]), (&json!(0), &json!([])));
    for path in [
        format!("/api/v1/executions/{id}"),
        format!("/api/v1/executions/{num}"),
        format!("/api/v1/executions/{id}/steps"),
        format!("/api/v1/executions/{id}/logs"),
        format!("/api/v1/executions/{id}/oslogs.zip"),
        format!("/api/v1/executions/{id}/events"),
        "/api/v1/playbooks/acme-count".to_owned(),
    ] {
        let (status, answer) = globex.get(&path);
        assert_eq!(status, 404, "{path}: {answer}");
    }
    for path in [
        format!("/api/v1/executions/{id}/kill"),
        format!("/api/v1/executions/{id}/steps/n/replay"),
        "/api/v1/playbooks/acme-count/run".to_owned(),
    ] {
        let (status, answer) = globex.post(&path, "{}");
        assert_eq!(status, 404, "{path}: {answer}");
    }
    for (method, body) in [("PUT", PLAYBOOK), ("DELETE", "")] {
        let (status, answer) = globex.call(method, "/api/v1/playbooks/acme-count", body);
        assert_eq!(status, 404, "{method}: {answer}");
    }
    let (_, steps) = globex.get("/api/v1/steps");
    assert_eq!(steps["count"], 0, "{steps}");
    let (_, logs) = globex.get("/api/v1/logs");
    assert_eq!(logs["count"], 0, "{logs}");
    let (_, playbooks) = globex.get("/api/v1/playbooks");
    assert_eq!(
        playbooks["count"], 0,
        "the files' playbooks are the default tenant's"
    );
    let (status, answer) = globex.post("/api/v1/playbooks/ip-enrichment/run", "{}");
    assert_eq!(status, 404, "{answer}");
    // The playbook id is taken, without saying by whom.
    let (status, answer) = globex.post("/api/v1/playbooks", PLAYBOOK);
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("is taken"),
        "{answer}"
    );

    // ThreatConnect: a list without acme's execution, and its number not found.
    let (_, tc) = globex.get("/api/v3/playbook/executions?count=true");
    assert_eq!((&tc["count"], &tc["data"]), (&json!(0), &json!([])), "{tc}");
    let (status, tc) = globex.get(&format!("/api/v3/playbook/executions/{num}"));
    assert_eq!((status, &tc["status"]), (404, &json!("Error")), "{tc}");
    let (_, tc) = acme.get(&format!("/api/v3/playbook/executions?tql=id%20%3D%20{num}"));
    assert_eq!(tc["data"][0]["id"], num, "{tc}");

    // SecMaster: a workspace is a tenant; another's is refused with SecMaster's code.
    let audit = |workspace: &str| {
        format!("/v1/p/workspaces/{workspace}/soc/playbooks/instances/auditlogs?offset=0&limit=100")
    };
    let (status, rows) = globex.post(&audit("globex"), "{}");
    assert_eq!((status, &rows["count"]), (200, &json!(0)), "{rows}");
    let (status, refused) = globex.post(&audit("acme"), "{}");
    assert_eq!(
        (status, &refused["code"]),
        (400, &json!("SecMaster.20010001")),
        "{refused}"
    );
    let (status, rows) = acme.post(&audit("acme"), "{}");
    assert_eq!((status, &rows["count"]), (200, &json!(2)), "{rows}");

    // Assets: names are one namespace, each asset its tenant's.
    let asset = r#"{"name": "acme-intel", "app": "ioc-extract"}"#;
    let (status, made) = acme_admin.post("/api/v1/assets", asset);
    assert_eq!(status, 201, "{made}");
    let (status, _) = globex_admin.get("/api/v1/assets/acme-intel");
    assert_eq!(status, 404);
    let (_, assets) = globex_admin.get("/api/v1/assets");
    assert_eq!(assets["count"], 0, "{assets}");
    let (status, answer) = globex_admin.post("/api/v1/assets", asset);
    assert_eq!(status, 409, "{answer}");
    let (status, _) = globex_admin.call("DELETE", "/api/v1/assets/acme-intel", "");
    assert_eq!(status, 404);
    // A globex playbook that binds acme's asset cannot use it.
    let binds = "id: globex-binds\nname: Binds\ntrigger: { type: manual }\nnodes:\n  \
                 n: { app: ioc-extract, action: extract, asset: acme-intel, input: { text: x } }\n";
    assert_eq!(globex.post("/api/v1/playbooks", binds).0, 201);
    let (_, ran) = globex.post("/api/v1/playbooks/globex-binds/run?wait=true", "{}");
    assert_eq!(ran["status"], "Failed", "{ran}");
    assert!(
        ran.to_string()
            .contains("asset `acme-intel` is not configured"),
        "{ran}"
    );
    let globex_id = ran["id"].as_str().unwrap().to_owned();

    // Splunk SOAR: acme's action run is not globex's.
    let (status, queued) = acme.post("/rest/action_run", SPIN);
    assert_eq!(status, 200, "{queued}");
    let run = queued["action_run_id"].as_i64().unwrap();
    let (status, answer) = globex.get(&format!("/rest/action_run/{run}"));
    assert_eq!((status, &answer["failed"]), (404, &json!(true)), "{answer}");
    let (status, answer) = globex.post(&format!("/rest/action_run/{run}"), r#"{"cancel": true}"#);
    assert_eq!(status, 404, "{answer}");
    let (_, runs) = globex.get("/rest/action_run");
    assert_eq!(runs["count"], 0, "{runs}");
    let (_, app_runs) = globex.get("/rest/app_run");
    assert_eq!(app_runs["count"], 0, "{app_runs}");
    let (_, runs) = acme.get("/rest/action_run");
    assert_eq!(runs["count"], 1, "{runs}");
    assert_eq!(
        acme.post(&format!("/rest/action_run/{run}"), r#"{"cancel": true}"#)
            .0,
        200
    );

    // The stream globex opened carried globex's execution only.
    loop {
        let (_, event) = heard.next().expect("the stream goes on");
        assert_eq!(event["execution_id"], globex_id.as_str(), "{event}");
        if event["type"] == "execution_ended" {
            break;
        }
    }

    // A playbook of globex cannot run acme's, nor a globex action run bind acme's asset.
    let calls_acme = "id: calls-acme\nname: Calls\ntrigger: { type: manual }\nnodes:\n  \
                      child: { playbook: acme-count, input: {} }\n";
    let (status, refused) = globex.post("/api/v1/playbooks", calls_acme);
    assert_eq!(status, 400, "{refused}");
    assert!(refused.to_string().contains("acme-count"), "{refused}");
    let binds_asset = r#"{"action":"extract","container_id":1,"name":"x","targets":[{"app_id":"ioc-extract","assets":["acme-intel"],"parameters":[{"text":"a"}]}]}"#;
    let (status, refused) = globex.post("/rest/action_run", binds_asset);
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("not a configured asset"),
        "{refused}"
    );
    let (status, _) = globex_admin.call("PUT", "/api/v1/assets/acme-intel", asset);
    assert_eq!(status, 409);
    // Nor name another tenant's secrets, or the server's: only its own.
    let theirs =
        r#"{"name": "g", "app": "ioc-extract", "secrets": {"k": {"env": "WASP_SECRET_ACME__VT"}}}"#;
    let (status, refused) = globex_admin.post("/api/v1/assets", theirs);
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("WASP_SECRET_GLOBEX__*"),
        "{refused}"
    );

    // Acme's app runs and their results are not globex's either.
    let extract = r#"{"action":"extract","container_id":1,"name":"x","targets":[{"app_id":"ioc-extract","parameters":[{"text":"a 1.2.3.4"}]}]}"#;
    let (_, queued) = acme.post("/rest/action_run", extract);
    let extract_run = queued["action_run_id"].as_i64().unwrap();
    let app_run = loop {
        let (_, runs) = acme.get(&format!("/rest/action_run/{extract_run}/app_runs"));
        if let Some(id) = runs["data"][0]["id"].as_i64() {
            break id;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    for path in [
        format!("/rest/action_run/{extract_run}/app_runs"),
        format!("/rest/app_run/{app_run}"),
        format!("/rest/app_run/{app_run}/action_result"),
    ] {
        let (status, answer) = globex.get(&path);
        assert_eq!(
            (status, &answer["failed"]),
            (404, &json!(true)),
            "{path}: {answer}"
        );
        assert_eq!(acme.get(&path).0, 200, "{path}");
    }

    // Events fire the caller's tenant's playbooks; an unsigned webhook is its tenant's.
    let on_event = "id: acme-on-alert\nname: On alert\ntrigger: { type: event }\n\
                    auto_execute: true\ntrigger_conditions: [ 'type = \"alert\"' ]\nnodes:\n  \
                    n: { app: transform, action: count, input: { items: [1] } }\n";
    assert_eq!(acme.post("/api/v1/playbooks", on_event).0, 201);
    let (_, fired) = globex.post("/api/v1/events", r#"{"type": "alert"}"#);
    assert_eq!(fired["matched"], 0, "{fired}");
    let (_, fired) = acme.post("/api/v1/events", r#"{"type": "alert"}"#);
    assert_eq!(fired["matched"], 1, "{fired}");
    let hook = "id: acme-hook\nname: Hook\ntrigger: { type: webhook }\nnodes:\n  \
                n: { app: transform, action: count, input: { items: [1] } }\n";
    assert_eq!(acme.post("/api/v1/playbooks", hook).0, 201);
    let (status, answer) = globex.post("/api/v1/hooks/acme-hook", "{}");
    assert_eq!(status, 404, "{answer}");
    assert_eq!(acme.post("/api/v1/hooks/acme-hook", "{}").0, 202);

    // A web session (Splunk SOAR's password login): basic auth once sets its cookies; a
    // change sent with them needs the CSRF token too, and the key's revocation ends it.
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("analyst:{}", acme.token));
    let login = ureq::http::Request::builder()
        .uri(server.url("/"))
        .header("Authorization", format!("Basic {basic}"))
        .body(String::new())
        .unwrap();
    let response = server.agent.run(login).unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let csrf = cookies
        .iter()
        .find_map(|c| c.strip_prefix("csrftoken="))
        .unwrap()
        .to_owned();
    let with_session = |method: &str, path: &str, csrf: Option<&str>| {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(server.url(path))
            .header("Cookie", cookies.join("; "));
        if let Some(csrf) = csrf {
            request = request.header("X-CSRFToken", csrf);
        }
        read(
            server
                .agent
                .run(request.body("{}".to_owned()).unwrap())
                .unwrap(),
        )
    };
    let (status, listed) = with_session("GET", "/rest/action_run", None);
    assert_eq!((status, &listed["count"]), (200, &json!(2)), "{listed}");
    let run = "/api/v1/playbooks/acme-count/run";
    let (status, refused) = with_session("POST", run, None);
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("X-CSRFToken"),
        "{refused}"
    );
    assert_eq!(with_session("POST", run, Some("not-the-token")).0, 403);
    assert_eq!(with_session("POST", run, Some(&csrf)).0, 202);
    // A cookie changed by a byte is no session.
    let forged: Vec<String> = cookies
        .iter()
        .map(|c| match c.strip_prefix("sessionid=") {
            Some(value) => {
                let last = if value.ends_with('0') { "1" } else { "0" };
                format!("sessionid={}{last}", &value[..value.len() - 1])
            }
            None => c.clone(),
        })
        .collect();
    let request = ureq::http::Request::builder()
        .uri(server.url("/rest/action_run"))
        .header("Cookie", forged.join("; "))
        .body(String::new())
        .unwrap();
    assert_eq!(read(server.agent.run(request).unwrap()).0, 401);
    // A wrong password starts no session.
    let wrong = ureq::http::Request::builder()
        .uri(server.url("/"))
        .header("Authorization", "Basic YW5hbHlzdDp3cm9uZw==")
        .body(String::new())
        .unwrap();
    let response = server.agent.run(wrong).unwrap();
    assert!(response.headers().get("set-cookie").is_none());

    // A server without a signing key checks no signature, and says so.
    let now = chrono::Utc::now().timestamp().to_string();
    let signed = ureq::http::Request::builder()
        .uri(server.url("/api/v3/playbook/executions"))
        .header("Authorization", "TC key_x:AAAA")
        .header("Timestamp", now)
        .body(String::new())
        .unwrap();
    let (status, refused) = read(server.agent.run(signed).unwrap());
    assert_eq!(status, 401, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("--key-file"),
        "{refused}"
    );

    // Keys: an admin manages its own tenant's.
    let (_, keys) = acme_admin.get("/api/v1/keys");
    let tenants: Vec<&Value> = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["tenant"])
        .collect();
    assert_eq!(tenants, [&json!("acme"), &json!("acme")], "{keys}");
    let (status, answer) = acme_admin.post(
        "/api/v1/keys",
        r#"{"name": "x", "role": "viewer", "tenant": "globex"}"#,
    );
    assert_eq!(status, 403, "{answer}");
    let globex_key = globex
        .token
        .trim_start_matches("wasp_")
        .rsplit_once('_')
        .unwrap()
        .0;
    let (status, _) = acme_admin.call("DELETE", &format!("/api/v1/keys/{globex_key}"), "");
    assert_eq!(status, 404);
    // Acme's execution is still acme's to read.
    assert_eq!(acme.get(&format!("/api/v1/executions/{id}")).0, 200);
    // Once its key is revoked, the session it started ends too.
    let acme_key = acme
        .token
        .trim_start_matches("wasp_")
        .rsplit_once('_')
        .unwrap()
        .0;
    assert_eq!(
        acme_admin
            .call("DELETE", &format!("/api/v1/keys/{acme_key}"), "")
            .0,
        200
    );
    assert_eq!(with_session("GET", "/rest/action_run", None).0, 401);
}

/// A token the test identity provider (`tests/fixtures/jwt`) signs with `claims`.
fn jwt(claims: Value) -> String {
    let pem = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/jwt/rsa-private.pem"),
    )
    .expect("the test key");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("an RSA key");
    let mut all = json!({
        "iss": "https://idp.example",
        "exp": chrono::Utc::now().timestamp() + 300,
    });
    all.as_object_mut()
        .expect("an object")
        .extend(claims.as_object().expect("an object").clone());
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    jsonwebtoken::encode(&header, &all, &key).expect("a token")
}

/// Seed 003: the tenant, the subject and the application come from the caller's JWT.
#[test]
fn a_jwt_is_its_subject_in_its_tenant_and_an_applications_sees_its_playbooks_only() {
    let dir = tempfile::tempdir().unwrap();
    let public = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/jwt/rsa-public.pem");
    let server = Server::start(
        &dir.path().join("wasp.db"),
        &[
            "--token",
            "bootstrap-0123456789",
            "--jwt-key",
            public.to_str().unwrap(),
            "--jwt-issuer",
            "https://idp.example",
        ],
    );
    let person = As {
        server: &server,
        token: jwt(json!({"sub": "alice", "tenant_id": "acme", "role": "operator"})),
    };
    let integration = As {
        server: &server,
        token: jwt(
            json!({"sub": "svc-1", "tenant_id": "acme", "role": "operator", "app_id": "soar-sync"}),
        ),
    };
    let other_app = As {
        server: &server,
        token: jwt(
            json!({"sub": "svc-2", "tenant_id": "acme", "role": "operator", "app_id": "other"}),
        ),
    };
    let (status, made) = person.post("/api/v1/playbooks", PLAYBOOK);
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (&made["tenant_id"], &made["created_by"], &made["app_id"]),
        (&json!("acme"), &json!("alice"), &Value::Null)
    );
    let owned = PLAYBOOK.replace("acme-count", "app-owned");
    let (status, made) = integration.post("/api/v1/playbooks", &owned);
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (&made["created_by"], &made["app_id"]),
        (&json!("svc-1"), &json!("soar-sync"))
    );
    // A person sees the tenant's playbooks; an application its own.
    let ids = |caller: &As| -> Vec<String> {
        let (_, listed) = caller.get("/api/v1/playbooks");
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["xid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&person), ["acme-count", "app-owned"]);
    assert_eq!(ids(&integration), ["app-owned"]);
    assert!(ids(&other_app).is_empty());
    assert_eq!(other_app.get("/api/v1/playbooks/app-owned").0, 404);
    assert_eq!(
        other_app.post("/api/v1/playbooks/app-owned/run", "{}").0,
        404
    );
    let (status, ran) = integration.post("/api/v1/playbooks/app-owned/run?wait=true", "{}");
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["app_id"], "soar-sync", "{ran}");
    // Another application sees none of its executions, hooks, events or playbooks.
    let execution = format!("/api/v1/executions/{}", ran["id"].as_str().unwrap());
    assert_eq!(integration.get(&execution).0, 200);
    assert_eq!(other_app.get(&execution).0, 404);
    assert_eq!(other_app.get(&format!("{execution}/steps")).0, 404);
    let (_, listed) = other_app.get("/api/v1/executions?count=true");
    assert_eq!(listed["count"], 0, "{listed}");
    let (_, listed) = other_app.get("/api/v1/steps");
    assert_eq!(listed["count"], 0, "{listed}");
    let audit = "/v1/p/workspaces/acme/soc/playbooks/instances/auditlogs?offset=0&limit=10";
    assert_eq!(other_app.post(audit, "{}").1["count"], 0);
    assert_eq!(integration.post(audit, "{}").1["count"], 2);
    let hook = "id: app-hook\nname: Hook\ntrigger: { type: webhook }\nnodes:\n  \
                n: { app: transform, action: count, input: { items: [1] } }\n";
    assert_eq!(integration.post("/api/v1/playbooks", hook).0, 201);
    assert_eq!(other_app.post("/api/v1/hooks/app-hook", "{}").0, 404);
    assert_eq!(integration.post("/api/v1/hooks/app-hook", "{}").0, 202);
    let on_event = "id: app-on-alert\nname: On alert\ntrigger: { type: event }\n\
                    auto_execute: true\nnodes:\n  \
                    n: { app: transform, action: count, input: { items: [1] } }\n";
    assert_eq!(integration.post("/api/v1/playbooks", on_event).0, 201);
    assert_eq!(other_app.post("/api/v1/events", "{}").1["matched"], 0);
    assert_eq!(integration.post("/api/v1/events", "{}").1["matched"], 1);
    let calls = "id: calls-app\nname: Calls\ntrigger: { type: manual }\nnodes:\n  \
                 child: { playbook: app-owned, input: {} }\n";
    assert_eq!(other_app.post("/api/v1/playbooks", calls).0, 400);
    // An application's admin manages no keys (it would make a key of the whole tenant).
    let app_admin = As {
        server: &server,
        token: jwt(
            json!({"sub": "svc-3", "tenant_id": "acme", "role": "admin", "app_id": "soar-sync"}),
        ),
    };
    let (status, refused) = app_admin.post("/api/v1/keys", r#"{"name": "x", "role": "admin"}"#);
    assert_eq!(status, 403, "{refused}");
    // A token whose subject reads as an API key's id is refused.
    let posing = As {
        server: &server,
        token: jwt(json!({"sub": "key_01abc", "tenant_id": "acme", "role": "admin"})),
    };
    assert_eq!(posing.get("/api/v1/executions").0, 401);
    // Its tenant's executions are a JWT's to read, another tenant's are not.
    let (_, listed) = person.get("/api/v1/executions?count=true");
    assert_eq!(listed["count"], 3, "{listed}");
    let elsewhere = As {
        server: &server,
        token: jwt(json!({"sub": "bob", "tenant_id": "globex", "role": "admin"})),
    };
    let (_, listed) = elsewhere.get("/api/v1/executions?count=true");
    assert_eq!(listed["count"], 0, "{listed}");
    // No role is a viewer's; an expired token, another issuer's, or one without a
    // tenant is refused.
    let viewer = As {
        server: &server,
        token: jwt(json!({"sub": "carol", "tenant_id": "acme"})),
    };
    assert_eq!(viewer.get("/api/v1/executions").0, 200);
    assert_eq!(viewer.post("/api/v1/playbooks/acme-count/run", "{}").0, 403);
    for claims in [
        json!({"sub": "alice", "tenant_id": "acme", "exp": chrono::Utc::now().timestamp() - 120}),
        json!({"sub": "alice", "tenant_id": "acme", "iss": "https://evil.example"}),
        json!({"sub": "alice"}),
    ] {
        let refused = As {
            server: &server,
            token: jwt(claims.clone()),
        };
        assert_eq!(refused.get("/api/v1/executions").0, 401, "{claims}");
    }
}
