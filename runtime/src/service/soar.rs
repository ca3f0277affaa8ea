//! Splunk SOAR's action runs: an action on one or more apps and assets, each app run a
//! sandboxed call per parameter set, recorded as SOAR records them (seed 001) and
//! cancellable while they run.

use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{Error, Service};
use crate::engine::{StepCall, StepRunner};
use crate::trace::{FailureKind, LogLevel};

impl Service {
    /// Check every target of `request`, record the action run as pending (as `tenant`'s,
    /// its app runs binding only that tenant's assets), and run its app runs one after
    /// the other after its `exec_delay_secs`; its number.
    #[tracing::instrument(name = "service.start_action_run", skip_all, fields(action = %request.action))]
    pub async fn start_action_run(
        self: &Arc<Self>,
        tenant: &str,
        request: ActionRunRequest,
    ) -> Result<i64, Error> {
        if request.exec_delay_secs > MAX_EXEC_DELAY_SECS {
            return Err(Error::Invalid(format!(
                "`exec_delay_secs` is {}; it may be at most {MAX_EXEC_DELAY_SECS} (a day)",
                request.exec_delay_secs
            )));
        }
        let plans = plan(self, tenant, &request)?;
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
        let (saved, owner) = (record.clone(), tenant.to_owned());
        let num = self
            .blocking(move |store| store.save_action_run(None, &owner, &saved))
            .await?;
        record["id"] = json!(num);
        let kill = CancellationToken::new();
        crate::lock(&self.running).insert(action_run_key(num), kill.clone());
        let delay = Duration::from_secs(request.exec_delay_secs);
        tokio::spawn(run(Arc::clone(self), num, record, plans, delay, kill));
        Ok(num)
    }

    /// Cancel the running action run `num`; false when it is not running.
    pub fn cancel_action_run(&self, num: i64) -> bool {
        match crate::lock(&self.running).get(&action_run_key(num)) {
            Some(kill) => {
                kill.cancel();
                true
            }
            None => false,
        }
    }
}

/// A name, or a 1-based number.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Key {
    Number(u64),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRunRequest {
    pub action: String,
    pub container_id: i64,
    pub name: String,
    pub targets: Vec<TargetRequest>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub exec_delay_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRequest {
    pub app_id: Key,
    #[serde(default)]
    pub assets: Vec<Key>,
    #[serde(default)]
    pub parameters: Vec<serde_json::Map<String, Value>>,
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
    tenant: String,
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
fn plan(service: &Service, tenant: &str, request: &ActionRunRequest) -> Result<Vec<Plan>, Error> {
    if request.targets.is_empty() {
        return Err(Error::Invalid(
            "`targets` is empty: name at least one app".to_owned(),
        ));
    }
    let registry = service.runner.apps();
    let apps: Vec<_> = registry.apps().collect();
    let assets = service.assets(tenant);
    let mut plans = Vec::new();
    for (t, target) in request.targets.iter().enumerate() {
        let (app_num, app) = find(&apps, &target.app_id, |a| &a.info.name).ok_or_else(|| {
            let known: Vec<&str> = apps.iter().map(|a| a.info.name.as_str()).collect();
            Error::Invalid(format!(
                "`targets[{t}].app_id` {} is not an app; the apps are {}",
                target.app_id,
                known.join(", ")
            ))
        })?;
        if !app.info.actions.iter().any(|a| a.name == request.action) {
            let known: Vec<&str> = app.info.actions.iter().map(|a| a.name.as_str()).collect();
            return Err(Error::Invalid(format!(
                "app `{}` has no action `{}`; its actions are {}",
                app.info.name,
                request.action,
                known.join(", ")
            )));
        }
        if target.assets.is_empty() && target.parameters.is_empty() {
            return Err(Error::Invalid(format!(
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
            return Err(Error::Invalid(format!(
                "`targets[{t}].parameters` holds {} sets; at most {MAX_PARAMETER_SETS}",
                target.parameters.len()
            )));
        }
        let mut resolved: Vec<Option<(String, usize)>> = Vec::new();
        for key in &target.assets {
            let Some((num, asset)) = find(&assets, key, |asset| &asset.name) else {
                return Err(Error::Invalid(format!(
                    "`targets[{t}].assets` names {key}, which is not a configured asset"
                )));
            };
            let name = &asset.name;
            if asset.app != app.info.name {
                return Err(Error::Invalid(format!(
                    "asset `{name}` is for app `{}`, not `{}`",
                    asset.app, app.info.name
                )));
            }
            if resolved.iter().flatten().any(|(_, n)| *n == num) {
                return Err(Error::Invalid(format!(
                    "`targets[{t}].assets` names asset `{name}` twice"
                )));
            }
            resolved.push(Some((name.clone(), num)));
        }
        if plans.len() + resolved.len() > MAX_APP_RUNS {
            return Err(Error::Invalid(format!(
                "the targets make more than {MAX_APP_RUNS} app runs (one per target and asset)"
            )));
        }
        if resolved.is_empty() {
            resolved.push(None);
        }
        for asset in resolved {
            plans.push(Plan {
                tenant: tenant.to_owned(),
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
                // The tenant is the action run's already (it counts only for a new one).
                .blocking(move |store| store.save_action_run(Some(num), "", &record))
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
    // Counted in actions (one per parameter set of each app run), as Splunk counts
    // them: one app run of two parameter sets, one failing, is "1 of 2 actions failed".
    let total: usize = plans.iter().map(|plan| plan.parameters.len()).sum();
    let mut succeeded = 0;
    for plan in plans {
        if kill.is_cancelled() {
            break;
        }
        succeeded += do_app_run(&service, num, &action, &container, plan, &kill).await;
    }
    crate::lock(&service.running).remove(&action_run_key(num));
    let ended = now();
    record["close_time"] = json!(ended);
    record["update_time"] = json!(ended);
    if kill.is_cancelled() {
        record["status"] = json!("failed");
        record["cancelled"] = json!("cancelled on request");
        record["message"] = json!(format!(
            "cancelled; {succeeded} of {total} actions had succeeded"
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

/// One app run: every parameter set through the sandbox. How many succeeded.
async fn do_app_run(
    service: &Arc<Service>,
    action_run: i64,
    action: &str,
    container: &Value,
    plan: Plan,
    kill: &CancellationToken,
) -> usize {
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
        // Who ran it: stamped once identities are.
        "effective_user": null,
        "end_time": null,
        "exception_occured": false,
        "extra_data": [],
        "message": "",
        "node_guid": service.node_guid(),
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
        return 0;
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
                tenant: plan.tenant.clone(),
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
        // As Splunk shows a parameter set: with its context (the app got it without).
        let mut shown = parameter.clone();
        if let Some(fields) = shown.as_object_mut() {
            fields.insert(
                "context".to_owned(),
                json!({
                    "guid": ulid::Ulid::new().to_string().to_ascii_lowercase(),
                    "artifact_id": 0,
                    "parent_action_run": [],
                }),
            );
        }
        results.push(json!({
            "data": report.output.clone().map_or_else(Vec::new, |o| vec![o]),
            "message": message,
            "parameter": shown,
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
    successful
}
