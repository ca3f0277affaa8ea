//! The Splunk SOAR view (seed 001): `POST /rest/action_run` runs one app action
//! against targets — one app run per (target, asset), and in each one sandboxed call
//! per parameter set — and `/rest/action_run/{id}`, `…/app_runs`, `/rest/app_run/{id}`
//! and `…/action_result` report on it in the seed's shapes and status words.
//!
//! Splunk numbers apps and assets; wasp names them. `app_id` and `assets` take the
//! name, or the 1-based position of the app in `wasp app list` order (of the asset
//! among all assets, file and API, by name), so that clients that send numbers work
//! too.
//! Errors are `{"failed": true, "message": …}`: Splunk clients test `failed` first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{ApiError, Service};
use crate::engine::{StepCall, StepRunner};
use crate::trace::FailureKind;
use crate::trace::LogLevel;

/// An error in Splunk SOAR's shape.
pub(super) struct SoarError(ApiError);

impl From<ApiError> for SoarError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl IntoResponse for SoarError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self.0 {
            tracing::error!(error = %cause, "request failed");
        }
        let body = json!({"failed": true, "message": self.0.to_string()});
        (self.0.status(), Json(body)).into_response()
    }
}

fn bad(message: String) -> SoarError {
    SoarError(ApiError::BadRequest(message))
}

/// A name, or a 1-based number.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
enum Key {
    Number(u64),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionRunRequest {
    action: String,
    container_id: i64,
    name: String,
    targets: Vec<TargetRequest>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    exec_delay_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TargetRequest {
    app_id: Key,
    #[serde(default)]
    assets: Vec<Key>,
    #[serde(default)]
    parameters: Vec<serde_json::Map<String, Value>>,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Number(n) => write!(f, "{n}"),
            Key::Name(name) => write!(f, "`{name}`"),
        }
    }
}

/// App runs one action run may make (one per target and asset).
const MAX_APP_RUNS: usize = 100;
/// Parameter sets in one target (each is one sandboxed call).
const MAX_PARAMETER_SETS: usize = 1_000;
/// The longest `exec_delay_secs`: a day. A delayed run holds a place in the server
/// until it starts.
const MAX_EXEC_DELAY_SECS: u64 = 24 * 60 * 60;

/// One app run to do: an app's action on one asset (or none), once per parameter set.
struct Plan {
    app: String,
    app_num: usize,
    app_version: String,
    asset: Option<(String, usize)>,
    parameters: Vec<Value>,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The item `key` names in `items`, with its 1-based number: by `name`, or by number.
fn find<'a, T>(items: &'a [T], key: &Key, name: impl Fn(&T) -> &str) -> Option<(usize, &'a T)> {
    match key {
        Key::Number(n) => usize::try_from(*n)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| items.get(i).map(|item| (i + 1, item))),
        Key::Name(wanted) => items
            .iter()
            .enumerate()
            .find(|(_, item)| name(item) == wanted)
            .map(|(i, item)| (i + 1, item)),
    }
}

/// Resolve and check every target before anything runs.
fn plan(service: &Service, request: &ActionRunRequest) -> Result<Vec<Plan>, SoarError> {
    if request.targets.is_empty() {
        return Err(bad("`targets` is empty: name at least one app".to_owned()));
    }
    let registry = service.runner.apps();
    let apps: Vec<_> = registry.apps().collect();
    let assets: Vec<_> = service.runner.assets().list();
    let mut plans = Vec::new();
    for (t, target) in request.targets.iter().enumerate() {
        let (app_num, app) = find(&apps, &target.app_id, |a| &a.info.name).ok_or_else(|| {
            let known: Vec<&str> = apps.iter().map(|a| a.info.name.as_str()).collect();
            bad(format!(
                "`targets[{t}].app_id` {} is not an app; the apps are {}",
                target.app_id,
                known.join(", ")
            ))
        })?;
        if !app.info.actions.iter().any(|a| a.name == request.action) {
            let known: Vec<&str> = app.info.actions.iter().map(|a| a.name.as_str()).collect();
            return Err(bad(format!(
                "app `{}` has no action `{}`; its actions are {}",
                app.info.name,
                request.action,
                known.join(", ")
            )));
        }
        if target.assets.is_empty() && target.parameters.is_empty() {
            return Err(bad(format!(
                "`targets[{t}]` has neither assets nor parameters; give at least one"
            )));
        }
        let parameters: Vec<Value> = if target.parameters.is_empty() {
            vec![json!({})]
        } else {
            target
                .parameters
                .iter()
                .cloned()
                .map(Value::Object)
                .collect()
        };
        if target.parameters.len() > MAX_PARAMETER_SETS {
            return Err(bad(format!(
                "`targets[{t}].parameters` holds {} sets; at most {MAX_PARAMETER_SETS}",
                target.parameters.len()
            )));
        }
        let mut resolved: Vec<Option<(String, usize)>> = Vec::new();
        for key in &target.assets {
            let Some((num, asset)) = find(&assets, key, |asset| &asset.name) else {
                return Err(bad(format!(
                    "`targets[{t}].assets` names {key}, which is not a configured asset"
                )));
            };
            let name = &asset.name;
            if asset.app != app.info.name {
                return Err(bad(format!(
                    "asset `{name}` is for app `{}`, not `{}`",
                    asset.app, app.info.name
                )));
            }
            if resolved.iter().flatten().any(|(_, n)| *n == num) {
                return Err(bad(format!(
                    "`targets[{t}].assets` names asset `{name}` twice"
                )));
            }
            resolved.push(Some((name.clone(), num)));
        }
        if plans.len() + resolved.len() > MAX_APP_RUNS {
            return Err(bad(format!(
                "the targets make more than {MAX_APP_RUNS} app runs (one per target and asset)"
            )));
        }
        if resolved.is_empty() {
            resolved.push(None);
        }
        for asset in resolved {
            plans.push(Plan {
                app: app.info.name.clone(),
                app_num,
                app_version: app.info.version.clone(),
                asset,
                parameters: parameters.clone(),
            });
        }
    }
    Ok(plans)
}

/// `POST /rest/action_run`.
pub(super) async fn create(
    State(service): State<Arc<Service>>,
    body: Bytes,
) -> Result<Json<Value>, SoarError> {
    let request: ActionRunRequest = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("the body is not a valid action run: {e}")))?;
    if request.exec_delay_secs > MAX_EXEC_DELAY_SECS {
        return Err(bad(format!(
            "`exec_delay_secs` is {}; it may be at most {MAX_EXEC_DELAY_SECS} (a day)",
            request.exec_delay_secs
        )));
    }
    let plans = plan(&service, &request)?;
    let created = now();
    let mut record = json!({
        "action": request.action,
        "assign_time": null,
        "cancelled": "",
        "cb_fn": "",
        "close_time": null,
        "comment": "",
        "container": request.container_id,
        "create_time": created,
        "creator": null,
        "due_time": null,
        "exec_delay_secs": request.exec_delay_secs,
        "exec_order": 0,
        "handle": "",
        "message": "",
        "name": request.name,
        "owner": null,
        "playbook": null,
        "playbook_run": null,
        "start_time": null,
        "status": "pending",
        "targets": request.targets,
        "type": request.kind,
        "update_time": created,
        "version": 1,
    });
    let saved = record.clone();
    let num = service
        .blocking(move |store| store.save_action_run(None, &saved))
        .await?;
    record["id"] = json!(num);
    let kill = CancellationToken::new();
    crate::lock(&service.running).insert(action_run_key(num), kill.clone());
    let delay = Duration::from_secs(request.exec_delay_secs);
    tokio::spawn(run(Arc::clone(&service), num, record, plans, delay, kill));
    Ok(Json(json!({
        "action_run_id": num,
        "message": "New action queued.",
        "success": true,
    })))
}

fn action_run_key(num: i64) -> String {
    format!("action_run:{num}")
}

/// Run the app runs of action run `num` one after the other, recording each.
async fn run(
    service: Arc<Service>,
    num: i64,
    mut record: Value,
    plans: Vec<Plan>,
    delay: Duration,
    kill: CancellationToken,
) {
    let save = |record: Value| {
        let service = Arc::clone(&service);
        async move {
            if let Err(e) = service
                .blocking(move |store| store.save_action_run(Some(num), &record))
                .await
            {
                tracing::error!(action_run = num, error = %e, "storing an action run failed");
            }
        }
    };
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = kill.cancelled() => {}
    }
    record["status"] = json!("running");
    record["start_time"] = json!(now());
    record["update_time"] = record["start_time"].clone();
    save(record.clone()).await;
    let action = record["action"].as_str().unwrap_or_default().to_owned();
    let container = record["container"].clone();
    let (mut succeeded, total) = (0, plans.len());
    for plan in plans {
        if kill.is_cancelled() {
            break;
        }
        if do_app_run(&service, num, &action, &container, plan, &kill).await {
            succeeded += 1;
        }
    }
    crate::lock(&service.running).remove(&action_run_key(num));
    let ended = now();
    record["close_time"] = json!(ended);
    record["update_time"] = json!(ended);
    if kill.is_cancelled() {
        record["status"] = json!("failed");
        record["cancelled"] = json!("cancelled on request");
        record["message"] = json!(format!(
            "cancelled; {succeeded} of {total} app runs had succeeded"
        ));
    } else {
        record["status"] = json!(if succeeded == total {
            "success"
        } else {
            "failed"
        });
        record["message"] = json!(if succeeded == total {
            format!("{succeeded} actions succeeded")
        } else {
            format!("{} of {total} actions failed", total - succeeded)
        });
    }
    save(record).await;
}

/// One app run: every parameter set through the sandbox. Whether all succeeded.
async fn do_app_run(
    service: &Arc<Service>,
    action_run: i64,
    action: &str,
    container: &Value,
    plan: Plan,
    kill: &CancellationToken,
) -> bool {
    let (asset_name, asset_num) = match &plan.asset {
        Some((name, num)) => (Some(name.clone()), json!(num)),
        None => (None, Value::Null),
    };
    let mut record = json!({
        "action": action,
        "action_run": action_run,
        "app": plan.app_num,
        "app_name": plan.app,
        "app_version": plan.app_version,
        "asset": asset_num,
        "asset_name": asset_name,
        "automation_broker": null,
        "container": container,
        "end_time": null,
        "exception_occured": false,
        "extra_data": [],
        "message": "",
        "playbook_run": null,
        "result_data": [],
        "result_summary": {"total_objects": plan.parameters.len(), "total_objects_successful": 0},
        "start_time": now(),
        "status": "running",
        "version": 1,
    });
    let initial = record.clone();
    let Ok(num) = service
        .blocking(move |store| store.save_app_run(None, action_run, &initial))
        .await
    else {
        return false;
    };
    record["id"] = json!(num);
    let mut results = Vec::new();
    let mut exception = false;
    for parameter in &plan.parameters {
        let report = service
            .runner
            .run(StepCall {
                node: "action_run".to_owned(),
                app: plan.app.clone(),
                action: action.to_owned(),
                input: parameter.clone(),
                timeout: None,
                memory: None,
                asset: asset_name.clone(),
                level: LogLevel::Info,
                kill: kill.clone(),
            })
            .await;
        let (status, message) = match &report.error {
            None => ("success", String::new()),
            Some(error) => {
                exception |= !matches!(error.kind, FailureKind::AppError | FailureKind::InputError);
                ("failed", error.message.clone())
            }
        };
        results.push(json!({
            "data": report.output.clone().map_or_else(Vec::new, |o| vec![o]),
            "message": message,
            "parameter": parameter,
            "status": status,
            "summary": {},
        }));
    }
    let successful = results.iter().filter(|r| r["status"] == "success").count();
    let all = successful == results.len();
    record["status"] = json!(if all { "success" } else { "failed" });
    record["exception_occured"] = json!(exception);
    record["end_time"] = json!(now());
    record["result_summary"]["total_objects_successful"] = json!(successful);
    record["message"] = json!(format!(
        "'{action}' on {}: {successful} of {} actions succeeded",
        asset_name.map_or_else(|| "no asset".to_owned(), |a| format!("asset '{a}'")),
        results.len()
    ));
    record["result_data"] = json!(results);
    let saved = record;
    if let Err(e) = service
        .blocking(move |store| store.save_app_run(Some(num), action_run, &saved))
        .await
    {
        tracing::error!(app_run = num, error = %e, "storing an app run failed");
    }
    all
}

fn number(id: &str, what: &str) -> Result<i64, SoarError> {
    id.parse()
        .map_err(|_| SoarError(ApiError::NotFound(format!("there is no {what} `{id}`"))))
}

/// `GET /rest/action_run/{id}`.
pub(super) async fn get(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, SoarError> {
    let num = number(&id, "action run")?;
    let record = service.blocking(move |store| store.action_run(num)).await?;
    let mut record = record
        .ok_or_else(|| SoarError(ApiError::NotFound(format!("there is no action run `{id}`"))))?;
    record["id"] = json!(num);
    Ok(Json(record))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelRequest {
    cancel: bool,
}

/// `POST /rest/action_run/{id}` with `{"cancel": true}`.
pub(super) async fn cancel(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, SoarError> {
    let request: CancelRequest = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("expected {{\"cancel\": true}}: {e}")))?;
    if !request.cancel {
        return Err(bad("expected {\"cancel\": true}".to_owned()));
    }
    let num = number(&id, "action run")?;
    let record = service.blocking(move |store| store.action_run(num)).await?;
    let record = record
        .ok_or_else(|| SoarError(ApiError::NotFound(format!("there is no action run `{id}`"))))?;
    match crate::lock(&service.running).get(&action_run_key(num)) {
        Some(kill) => {
            kill.cancel();
            Ok(Json(json!({
                "cancelled": true,
                "message": format!("action run {num} is being cancelled"),
            })))
        }
        None => Err(SoarError(ApiError::Conflict(format!(
            "action run {num} is not running: it is {}",
            record["status"].as_str().unwrap_or("unknown")
        )))),
    }
}

/// Splunk's paging: `page` from 0, `page_size` (0 means all); default 10 a page.
fn paging(params: &HashMap<String, String>) -> Result<(i64, i64), SoarError> {
    let page = super::number_param(params, "page", 0, 0..=i64::MAX)?;
    let size = super::number_param(params, "page_size", 10, 0..=10_000)?;
    Ok((page, size))
}

fn page_of(data: Vec<Value>, count: i64, size: i64) -> Json<Value> {
    let pages = if size == 0 {
        1
    } else {
        (count + size - 1) / size
    };
    Json(json!({"count": count, "num_pages": pages.max(1), "data": data}))
}

/// `GET /rest/action_run/{id}/app_runs`.
pub(super) async fn app_runs_of(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, SoarError> {
    app_runs(&service, Some(id), &params).await
}

/// `GET /rest/app_run`: every app run.
pub(super) async fn all_app_runs(
    State(service): State<Arc<Service>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, SoarError> {
    app_runs(&service, None, &params).await
}

async fn app_runs(
    service: &Arc<Service>,
    id: Option<String>,
    params: &HashMap<String, String>,
) -> Result<Json<Value>, SoarError> {
    let action_run = match id {
        Some(id) => {
            let num = number(&id, "action run")?;
            if service
                .blocking(move |store| store.action_run(num))
                .await?
                .is_none()
            {
                return Err(SoarError(ApiError::NotFound(format!(
                    "there is no action run `{id}`"
                ))));
            }
            Some(num)
        }
        None => None,
    };
    let (page, size) = paging(params)?;
    let limit = if size == 0 { i64::MAX } else { size };
    let offset = page.saturating_mul(size);
    let (mut runs, count) = service
        .blocking(move |store| store.app_runs(action_run, offset, limit))
        .await?;
    if !params.contains_key("include_expensive") {
        for run in &mut runs {
            if let Some(run) = run.as_object_mut() {
                run.remove("result_data");
            }
        }
    }
    Ok(page_of(runs, count, size))
}

/// `GET /rest/app_run/{id}`.
pub(super) async fn app_run(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, SoarError> {
    let num = number(&id, "app run")?;
    let run = service.blocking(move |store| store.app_run(num)).await?;
    run.map(Json)
        .ok_or_else(|| SoarError(ApiError::NotFound(format!("there is no app run `{id}`"))))
}

/// `GET /rest/app_run/{id}/action_result?page=&page_size=`: the results of an app run,
/// one per parameter set.
pub(super) async fn action_results(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, SoarError> {
    let num = number(&id, "app run")?;
    let run = service
        .blocking(move |store| store.app_run(num))
        .await?
        .ok_or_else(|| SoarError(ApiError::NotFound(format!("there is no app run `{id}`"))))?;
    let results = run["result_data"].as_array().cloned().unwrap_or_default();
    let (page, size) = paging(&params)?;
    let count = i64::try_from(results.len()).unwrap_or(i64::MAX);
    let data: Vec<Value> = if size == 0 {
        results
    } else {
        let start = usize::try_from(page.saturating_mul(size)).unwrap_or(usize::MAX);
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        results.into_iter().skip(start).take(size).collect()
    };
    Ok(page_of(data, count, size))
}
