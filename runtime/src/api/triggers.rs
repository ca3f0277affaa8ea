//! Playbooks that start themselves: webhooks (`POST /api/v1/hooks/{playbook}`, signed
//! with HMAC-SHA256 when the playbook names a secret), events (`POST /api/v1/events`,
//! firing every enabled `auto_execute` playbook whose `trigger_conditions` all hold),
//! and timers (a task per timer playbook).
//!
//! A timer fires at most once per due time: runs missed while the server was down, or
//! while it was too busy to fire on time, are not made up in a burst; the next fire time
//! is always the first one after now.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tracing::Instrument as _;

use super::{ApiError, Params, Service, answer_started, flag};
use crate::playbook::Playbook;
use crate::playbook::trigger::{Schedule, Trigger};
use crate::service::keys::{Identity, Role};
use crate::trace::TriggerType;

/// The header a webhook's signature comes in: `sha256=<hex of HMAC-SHA256(secret, body)>`.
/// GitHub's name for the same thing is accepted too.
const SIGNATURE_HEADERS: [&str; 2] = ["x-wasp-signature-256", "x-hub-signature-256"];

/// Whether a header may carry a credential, and so is never copied into a trigger
/// payload (which is stored at DEBUG and TRACE).
fn private_header(name: &str) -> bool {
    const WORDS: [&str; 7] = [
        "authorization",
        "cookie",
        "token",
        "secret",
        "key",
        "signature",
        "auth",
    ];
    WORDS.iter().any(|word| name.contains(word)) || name.contains("password")
}

/// How many upcoming fire times a timer playbook shows.
const NEXT_RUNS: usize = 5;

/// `POST /api/v1/hooks/{playbook}`: start the playbook with the request as its trigger
/// payload (`body`, `headers`, `query`). It answers at once with the execution's ids,
/// or with its record when `?wait=true`.
///
/// A hook whose playbook has a secret is authenticated by its signature alone (the
/// callers of webhooks rarely hold API tokens); one without needs the server's token
/// when there is one.
pub(super) async fn hook(
    State(service): State<Arc<Service>>,
    State(token): State<super::Token>,
    Path(xid): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // The caller may be anyone: a playbook that does not exist and one that a webhook
    // does not start get the same answer, so that it learns nothing of which exist.
    let playbook = service.playbook(&xid);
    let Some(Trigger::Webhook { secret }) = playbook.as_deref().map(|p| &p.trigger) else {
        return Err(ApiError::NotFound(format!("there is no webhook `{xid}`")));
    };
    let Some(playbook) = playbook.as_deref() else {
        return Err(ApiError::NotFound(format!("there is no webhook `{xid}`")));
    };
    // Without a signature the caller's key vouches for the request: another tenant's
    // (or application's) webhook is not there for it.
    let not_found = || ApiError::NotFound(format!("there is no webhook `{xid}`"));
    match secret {
        Some(source) => {
            // The cause is logged, never sent.
            let key = source.read().map_err(|e| {
                tracing::error!(playbook = %xid, error = %e, "a webhook's secret cannot be read");
                ApiError::Unavailable(format!(
                    "webhook `{xid}` cannot check signatures now: its secret cannot be read \
                     (the server's log says why)"
                ))
            })?;
            verify(&key, &headers, &body)?;
        }
        None => {
            if let Some(refused) = super::cross_site(&axum::http::Method::POST, &headers) {
                return Err(ApiError::Forbidden(refused));
            }
            let caller = (playbook, not_found);
            check_identity(
                &service,
                token.0.as_deref(),
                &headers,
                caller,
                Role::Operator,
            )
            .await?;
        }
    }
    // A signature vouches for the body only; waiting for (and so reading) the whole
    // record needs the API token as well, when the server has one. The playbook's
    // declared result (`respond=output`) is what its author chose to answer a webhook's
    // caller with, so the webhook's own credential suffices for it.
    let respond = match params.get("respond").map(String::as_str) {
        None => false,
        Some("output") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "`respond` is `{other}`; the one answer a webhook can respond with is `output`"
            )));
        }
    };
    let wait = flag(&params, "wait")? && !respond;
    if wait {
        let caller = (playbook, not_found);
        check_identity(&service, token.0.as_deref(), &headers, caller, Role::Viewer).await?;
    }
    let mut payload = json!({
        "body": match serde_json::from_slice::<Value>(&body) {
            Ok(value) => value,
            Err(_) => Value::String(String::from_utf8_lossy(&body).into_owned()),
        },
        "headers": headers
            .iter()
            .filter(|(name, _)| !private_header(name.as_str()))
            .map(|(name, value)| {
                (name.as_str().to_owned(), Value::from(String::from_utf8_lossy(value.as_bytes())))
            })
            .collect::<serde_json::Map<_, _>>(),
        "query": params
            .iter()
            .filter(|(name, _)| {
                *name != "wait"
                    && *name != "respond"
                    && !private_header(&name.to_ascii_lowercase())
            })
            .map(|(name, value)| (name.clone(), Value::from(value.clone())))
            .collect::<serde_json::Map<_, _>>(),
    });
    if secret.is_some() {
        // What a replayed signed request could change: say so to the playbook.
        payload["signed"] = json!(["body"]);
    }
    let span = super::request_span(&headers, "webhook");
    let started = service
        .run(
            None,
            &xid,
            payload,
            TriggerType::Webhook,
            None,
            super::Report::when(wait || respond),
        )
        .instrument(span)
        .await?;
    if respond {
        return respond_with_output(started).await;
    }
    answer_started(started, wait).await
}

/// The answer of `respond=output`: the execution's declared result as the whole body,
/// with the status its `output_status:` gives (200 without one), or, when it has none
/// or its status could not be rendered, 502 with why (or that the playbook declares
/// none) and the execution's id, to look it up.
async fn respond_with_output(started: super::Started) -> Result<Response, ApiError> {
    let id = started.id.clone();
    let (_, execution) = started
        .done
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::Unavailable(format!("execution `{id}` could not be stored")))?;
    let status = execution
        .output_status
        .and_then(|status| StatusCode::from_u16(status).ok())
        .unwrap_or(StatusCode::OK);
    Ok(match execution.output {
        Some(output) if execution.output_error.is_none() => (status, Json(output)).into_response(),
        _ => {
            let why = execution
                .output_error
                .unwrap_or_else(|| "the playbook declares no `output:` to respond with".to_owned());
            let status = serde_json::to_value(execution.status).unwrap_or_default();
            let status = status.as_str().unwrap_or_default();
            let body = json!({
                "error": format!("execution `{id}` ended {status} with no output: {why}"),
                "execution_id": id,
            });
            (StatusCode::BAD_GATEWAY, Json(body)).into_response()
        }
    })
}

/// Check the signature `headers` carry for `body` under `key`, in constant time.
fn verify(key: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let refused = |why: &str| ApiError::Forbidden(format!("the webhook's signature {why}"));
    let given = SIGNATURE_HEADERS
        .iter()
        .find_map(|name| headers.get(*name))
        .ok_or_else(|| {
            refused("is missing: send `X-Wasp-Signature-256: sha256=<hex of HMAC-SHA256(secret, body)>`")
        })?;
    let hex_digest = given
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("sha256="))
        .ok_or_else(|| refused("is not `sha256=<hex>`"))?;
    let digest = hex::decode(hex_digest).map_err(|_| refused("is not hexadecimal"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(ApiError::internal)?;
    mac.update(body);
    mac.verify_slice(&digest)
        .map_err(|_| refused("does not match the body"))
}

/// `POST /api/v1/events`: fire every enabled `auto_execute` event playbook whose
/// conditions all hold for the event (a JSON object); the executions started.
pub(super) async fn event(
    State(service): State<Arc<Service>>,
    Extension(caller): super::Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let event: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the event is not valid JSON: {e}")))?;
    if !event.is_object() {
        return Err(ApiError::BadRequest(
            "an event is a JSON object of fields, e.g. {\"type\": \"alert\", \"severity\": 8}"
                .to_owned(),
        ));
    }
    let fired = service.fire_event(&caller, &event).await;
    let matched = fired.len();
    let (mut executions, mut failed) = (Vec::new(), Vec::new());
    for (playbook, started) in fired {
        match started {
            Ok(started) => executions.push(super::answers::FiredExecution {
                playbook,
                started: super::answers::StartedExecution::of(&started),
            }),
            Err(e) => failed.push(super::answers::NotFired {
                playbook,
                error: e.to_string(),
            }),
        }
    }
    let body = super::answers::Fired {
        matched,
        executions,
        failed,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// The tokens `headers` present, in any of the schemes the views' clients send one
/// with: `Authorization: Bearer <t>` (native), `Authorization: TC-Token <t>`
/// (ThreatConnect's tcex), `ph-auth-token: <t>` (Splunk SOAR), `X-Auth-Token: <t>`
/// (Huawei SecMaster), and `Authorization: Basic` with the token as the password (seed
/// 001's `https://user:password@host/rest/…`; the user name is not checked).
pub(super) fn presented_tokens(headers: &HeaderMap) -> Vec<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let authorization = value(header::AUTHORIZATION.as_str());
    [
        authorization.and_then(|v| v.strip_prefix("Bearer ")),
        authorization.and_then(|v| v.strip_prefix("TC-Token ")),
        value("ph-auth-token"),
        value("x-auth-token"),
    ]
    .into_iter()
    .flatten()
    .map(Cow::Borrowed)
    .chain(basic_password(headers).map(Cow::Owned))
    .collect()
}

/// The password of `Authorization: Basic` (the user name is not checked).
pub(super) fn basic_password(headers: &HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let encoded = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")
        .filter(|encoded| encoded.len() <= 4096)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let pair = String::from_utf8(decoded).ok()?;
    pair.split_once(':')
        .map(|(_, password)| password.to_owned())
}

/// The value of cookie `name` among those `headers` carry.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Who `headers` say the caller is, when the server has a `token`: the bootstrap admin
/// (that token) or a key's identity; `None` when no token they present is either.
/// Without a token every caller is the bootstrap admin (a server on loopback).
pub(super) async fn identify(
    service: &Service,
    token: Option<&str>,
    headers: &HeaderMap,
) -> Option<Identity> {
    let Some(token) = token else {
        return Some(Identity::bootstrap());
    };
    for presented in presented_tokens(headers) {
        if let Some(identity) = service.identify(token, &presented).await {
            return Some(identity);
        }
    }
    None
}

/// The name of the cookie a web session (Splunk SOAR's password login) is carried in.
pub(super) const SESSION_COOKIE: &str = "sessionid";
/// The cookie a session's CSRF token is in; a change sent with the session must carry
/// it in `X-CSRFToken` too, which another site's page cannot read.
pub(super) const CSRF_COOKIE: &str = "csrftoken";

/// The caller's identity, refused with a 401 unless it is one, a 404 (`hidden`) unless
/// it may use `playbook`, or a 403 unless its role is at least `needed`: another tenant
/// learns nothing of what a role would let it do.
pub(super) async fn check_identity(
    service: &Service,
    token: Option<&str>,
    headers: &HeaderMap,
    (playbook, hidden): (&Playbook, impl FnOnce() -> ApiError),
    needed: Role,
) -> Result<Identity, ApiError> {
    let identity = identify(service, token, headers)
        .await
        .ok_or(ApiError::Unauthorized("`Authorization: Bearer <token>`"))?;
    if !identity.may_use(playbook) {
        return Err(hidden());
    }
    if identity.role < needed {
        return Err(ApiError::Forbidden(format!(
            "this needs the {} role, and the key presented is a {}",
            needed.as_str(),
            identity.role.as_str()
        )));
    }
    Ok(identity)
}

/// What a playbook's record shows of its trigger: the type, its settings (a secret by
/// where it is kept, never its value) and, for a timer, its next fire times.
pub(super) fn describe(service: &Service, playbook: &Playbook) -> Value {
    let mut trigger = json!({"type": playbook.trigger.kind()});
    match &playbook.trigger {
        Trigger::Webhook { secret } => {
            trigger["signed"] = json!(secret.is_some());
            trigger["url"] = json!(format!("/api/v1/hooks/{}", playbook.id));
        }
        Trigger::Timer(schedule) => {
            match schedule {
                Schedule::Cron { text, zone, .. } => {
                    trigger["cron"] = json!(text);
                    trigger["timezone"] = json!(zone.name());
                }
                Schedule::Every(every) => {
                    trigger["every"] = json!(format!("{}s", every.as_secs_f64()));
                }
            }
            // From the running timer's next due time (an interval counts from when it
            // started), else from now.
            trigger["next_runs"] = match service.next_due(&playbook.id) {
                Some(due) if playbook.enabled => {
                    let mut runs = vec![due];
                    runs.extend(schedule.upcoming(due, NEXT_RUNS - 1));
                    json!(runs)
                }
                _ if playbook.enabled => json!(schedule.upcoming(Utc::now(), NEXT_RUNS)),
                _ => json!([]),
            };
        }
        Trigger::Event => {
            trigger["conditions"] = json!(playbook.conditions.texts());
        }
        Trigger::Manual => {}
    }
    let mut described = json!({"trigger": trigger});
    if let Some(limit) = playbook.max_concurrent {
        described["max_concurrent"] = json!(limit);
    }
    described
}

/// Add what the running server knows of playbook `record["xid"]` to its stored record:
/// its trigger and run statistics.
pub(super) fn enrich(service: &Service, record: &mut Value, stats: Value) {
    let Some(xid) = record.get("xid").and_then(Value::as_str).map(str::to_owned) else {
        return;
    };
    record["run_stats"] = stats;
    if let Some(playbook) = service.playbook(&xid)
        && let (Some(target), Value::Object(extra)) =
            (record.as_object_mut(), describe(service, &playbook))
    {
        target.extend(extra);
    }
}

/// `enrich` for each playbook of a list, with the statistics the store computes.
pub(super) fn stats_of(
    store: &dyn crate::store::Store,
    xids: &[String],
    tenant: &str,
) -> Result<HashMap<String, Value>, crate::store::Error> {
    xids.iter()
        .map(|xid| Ok((xid.clone(), json!(store.run_stats(xid, tenant)?))))
        .collect()
}
