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

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{ApiError, Params, Service, answer_started, flag};
use crate::engine::{StepRunner as _, TriggerType};
use crate::playbook::Playbook;
use crate::playbook::trigger::{Schedule, Trigger};

/// The header a webhook's signature comes in: `sha256=<hex of HMAC-SHA256(secret, body)>`.
/// GitHub's name for the same thing is accepted too.
const SIGNATURE_HEADERS: [&str; 2] = ["x-wasp-signature-256", "x-hub-signature-256"];

/// Headers never copied into a trigger payload: they carry credentials.
const PRIVATE_HEADERS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    SIGNATURE_HEADERS[0],
    SIGNATURE_HEADERS[1],
];

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
    Path(xid): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let playbook = service
        .runner
        .playbook(&xid)
        .ok_or_else(|| ApiError::NotFound(format!("there is no playbook `{xid}`")))?;
    let Trigger::Webhook { secret } = &playbook.trigger else {
        return Err(ApiError::Conflict(format!(
            "playbook `{xid}` is started by `{}`, not by a webhook",
            playbook.trigger.kind()
        )));
    };
    match secret {
        Some(source) => {
            let key = source
                .read()
                .map_err(|e| ApiError::Internal(format!("the secret of webhook `{xid}`: {e}")))?;
            verify(&key, &headers, &body)?;
        }
        None => service.check_token(&headers)?,
    }
    let payload = json!({
        "body": match serde_json::from_slice::<Value>(&body) {
            Ok(value) => value,
            Err(_) => Value::String(String::from_utf8_lossy(&body).into_owned()),
        },
        "headers": headers
            .iter()
            .filter(|(name, _)| !PRIVATE_HEADERS.contains(&name.as_str()))
            .map(|(name, value)| {
                (name.as_str().to_owned(), Value::from(String::from_utf8_lossy(value.as_bytes())))
            })
            .collect::<serde_json::Map<_, _>>(),
        "query": params
            .iter()
            .filter(|(name, _)| *name != "wait")
            .map(|(name, value)| (name.clone(), Value::from(value.clone())))
            .collect::<serde_json::Map<_, _>>(),
    });
    let started = service
        .run(&xid, payload, TriggerType::Webhook, None)
        .await?;
    answer_started(started, flag(&params, "wait")?).await
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
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .map_err(|e| ApiError::Internal(format!("HMAC key: {e}")))?;
    mac.update(body);
    mac.verify_slice(&digest)
        .map_err(|_| refused("does not match the body"))
}

/// `POST /api/v1/events`: fire every enabled `auto_execute` event playbook whose
/// conditions all hold for the event (a JSON object); the executions started.
pub(super) async fn event(
    State(service): State<Arc<Service>>,
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
    let now = Utc::now();
    let mut fired: Vec<Arc<Playbook>> = service
        .runner
        .playbook_ids()
        .iter()
        .filter_map(|id| service.runner.playbook(id))
        .filter(|p| {
            p.enabled
                && p.auto_execute
                && matches!(p.trigger, Trigger::Event)
                && p.conditions.matches(&event, now)
        })
        .collect();
    fired.sort_by(|a, b| a.id.cmp(&b.id));
    let mut executions = Vec::new();
    for playbook in fired {
        let started = service
            .run(&playbook.id, event.clone(), TriggerType::Event, None)
            .await?;
        executions.push(json!({
            "playbook": playbook.id,
            "execution_id": started.id,
            "id": started.num,
            "links": {"execution": format!("/api/v1/executions/{}", started.id)},
        }));
    }
    let body = json!({"matched": executions.len(), "executions": executions});
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

impl Service {
    /// A 401 unless `headers` carry the server's token (when it has one).
    pub(super) fn check_token(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented.is_some_and(|p| super::constant_time_eq(p.as_bytes(), token.as_bytes())) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized)
        }
    }

    /// Start the timers of every timer playbook the server runs.
    pub fn start_timers(self: &Arc<Self>) {
        for id in self.runner.playbook_ids() {
            if let Some(playbook) = self.runner.playbook(&id) {
                self.schedule(&playbook);
            }
        }
    }

    /// (Re)start the timer of `playbook`, or stop it when it has none or is disabled.
    pub(super) fn schedule(self: &Arc<Self>, playbook: &Arc<Playbook>) {
        self.unschedule(&playbook.id);
        let Trigger::Timer(schedule) = &playbook.trigger else {
            return;
        };
        if !playbook.enabled {
            return;
        }
        let task = tokio::spawn(tick(
            Arc::downgrade(self),
            playbook.id.clone(),
            schedule.clone(),
        ));
        crate::lock(&self.timers).insert(playbook.id.clone(), task.abort_handle());
    }

    /// Stop the timer of playbook `xid`, if it has one.
    pub(super) fn unschedule(&self, xid: &str) {
        if let Some(timer) = crate::lock(&self.timers).remove(xid) {
            timer.abort();
        }
    }
}

/// Fire playbook `xid` on `schedule` until the service is gone or the timer is stopped.
async fn tick(service: std::sync::Weak<Service>, xid: String, schedule: Schedule) {
    let mut due = schedule.next_after(Utc::now());
    while let Some(at) = due {
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        let Some(service) = service.upgrade() else {
            return;
        };
        let payload = json!({"scheduled_at": at, "fired_at": Utc::now()});
        if let Err(e) = service.run(&xid, payload, TriggerType::Timer, None).await {
            tracing::warn!(playbook = %xid, error = %e, "a timer could not start its playbook");
        }
        // The next due time after this one, or after now if this one fired late: missed
        // times are skipped, never made up in a burst.
        let now = Utc::now();
        due = schedule
            .next_after(at)
            .filter(|next| *next > now)
            .or_else(|| schedule.next_after(now));
    }
}

/// What a playbook's record shows of its trigger: the type, its settings (a secret by
/// where it is kept, never its value) and, for a timer, its next fire times.
pub(super) fn describe(playbook: &Playbook) -> Value {
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
            trigger["next_runs"] = if playbook.enabled {
                json!(schedule.upcoming(Utc::now(), NEXT_RUNS))
            } else {
                json!([])
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
    if let Some(playbook) = service.runner.playbook(&xid)
        && let (Some(target), Value::Object(extra)) = (record.as_object_mut(), describe(&playbook))
    {
        target.extend(extra);
    }
}

/// `enrich` for each playbook of a list, with the statistics the store computes.
pub(super) fn stats_of(
    store: &dyn crate::store::Store,
    xids: &[String],
) -> Result<HashMap<String, Value>, crate::store::Error> {
    xids.iter()
        .map(|xid| Ok((xid.clone(), store.run_stats(xid)?)))
        .collect()
}
