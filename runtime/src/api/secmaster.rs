//! The Huawei Cloud SecMaster view (seed 004):
//! `POST /v1/{project_id}/workspaces/{workspace_id}/soc/playbooks/instances/auditlogs`.
//!
//! One audit row per instance: an execution is a PLAYBOOK instance, each of its step
//! runs an APP instance whose `parent_instance_id` is the execution. Statuses and
//! trigger types are SecMaster's words (FINISHED, FAILED, TERMINATED…; TIMER, EVENT,
//! MANUAL, DEBUG).
//!
//! A workspace is a tenant: `workspace_id` is the caller's tenant's name (`default` for
//! the server's own token), and any other is refused with SecMaster's
//! `SecMaster.20010001` (invalid workspace id), as an unknown workspace is. The
//! `project_id` (a Huawei Cloud region's project) is not checked.
//!
//! Filters, as the seed's example request shows them: `instance_type`, `status`,
//! `trigger_type` and `log_level` take one word or several (separated by commas or
//! spaces) and match any; the ids and `action_name` match exactly; `input`, `output`
//! and `error_msg` match text they contain; `start_time` keeps rows that started at or
//! after it, `end_time` rows that ended at or before it.
//!
//! The store keeps wasp's words; SecMaster's are said here, and a filter on SecMaster's
//! words is turned into one on the wasp words that read as them.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, Service};
use crate::store::{AuditFilter, AuditKind, AuditOrder, AuditRow, AuditStatus, Sort, Window};
use crate::tql;
use crate::trace::{ExecutionStatus, LogLevel, NodeStatus, TriggerType};

/// The most rows `offset + limit` may reach.
const MAX_WINDOW: i64 = 10_000;
/// The most words a word filter (`status`, `instance_type`, …) may list.
const MAX_WORDS: usize = 64;

/// An error in SecMaster's shape: `{"code", "message"}`.
pub(super) struct SecMasterError {
    code: &'static str,
    error: super::ApiError,
}

/// `SecMaster.20030001`: invalid parameters.
fn invalid(message: String) -> SecMasterError {
    refused("SecMaster.20030001", message)
}

/// A 400 with SecMaster's `code`.
fn refused(code: &'static str, message: String) -> SecMasterError {
    SecMasterError {
        code,
        error: super::ApiError::BadRequest(message),
    }
}

impl IntoResponse for SecMasterError {
    fn into_response(self) -> Response {
        // A 5xx says "internal error"; its cause goes to the log, by `log_failures`.
        let mut response = (
            self.error.status(),
            Json(json!({"code": self.code, "message": self.error.to_string()})),
        )
            .into_response();
        add_request_id(&mut response);
        self.error.with_cause(response)
    }
}

impl From<crate::service::Error> for SecMasterError {
    fn from(error: crate::service::Error) -> Self {
        super::ApiError::from(error).into()
    }
}

impl From<super::ApiError> for SecMasterError {
    fn from(error: super::ApiError) -> Self {
        SecMasterError {
            code: "SecMaster.20030001",
            error,
        }
    }
}

/// A refusal before the request reached SecMaster's view: a 401 with the code Huawei's
/// API gateway gives wrong IAM credentials (`APIGW.0301`), anything else as invalid.
pub(super) fn refusal(error: super::ApiError) -> SecMasterError {
    let code = match error {
        super::ApiError::Unauthorized(_) | super::ApiError::BadSignature(_) => "APIGW.0301",
        _ => "SecMaster.20030001",
    };
    SecMasterError { code, error }
}

/// `X-request-id: request_uuid-timestamp-hostname`, as SecMaster sends it.
fn add_request_id(response: &mut Response) {
    let id = format!(
        "{}-{}-wasp",
        ulid::Ulid::new().to_string().to_ascii_lowercase(),
        Utc::now().timestamp_millis()
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    instance_type: Option<String>,
    action_id: Option<String>,
    action_name: Option<String>,
    instance_id: Option<String>,
    parent_instance_id: Option<String>,
    log_level: Option<String>,
    input: Option<String>,
    output: Option<String>,
    error_msg: Option<String>,
    start_time: Option<String>,
    end_time: Option<String>,
    status: Option<String>,
    trigger_type: Option<String>,
}

/// SecMaster's word for an instance of `kind`.
fn instance_word(kind: AuditKind) -> &'static str {
    match kind {
        AuditKind::Playbook => "PLAYBOOK",
        AuditKind::App => "APP",
    }
}

/// SecMaster's word for `status`.
fn status_word(status: AuditStatus) -> &'static str {
    match status {
        AuditStatus::Execution(ExecutionStatus::Queued) => "CREATED",
        AuditStatus::Execution(ExecutionStatus::Running) => "RUNNING",
        AuditStatus::Execution(ExecutionStatus::Completed)
        | AuditStatus::Step(NodeStatus::Succeeded) => "FINISHED",
        AuditStatus::Execution(ExecutionStatus::Killed) | AuditStatus::Step(NodeStatus::Killed) => {
            "TERMINATED"
        }
        AuditStatus::Execution(ExecutionStatus::Failed | ExecutionStatus::PartiallyFailed)
        | AuditStatus::Step(
            NodeStatus::Pending
            | NodeStatus::Running
            | NodeStatus::Failed
            | NodeStatus::Skipped
            | NodeStatus::TimedOut,
        ) => "FAILED",
    }
}

/// SecMaster's word for an instance started as `trigger`: it has no webhooks (a webhook
/// is an event to it) and no child playbooks (a child reports its root's trigger).
fn trigger_word(trigger: TriggerType) -> &'static str {
    match trigger {
        TriggerType::Manual | TriggerType::Playbook => "MANUAL",
        TriggerType::Debug => "DEBUG",
        TriggerType::Webhook | TriggerType::Event => "EVENT",
        TriggerType::Timer => "TIMER",
    }
}

/// SecMaster's word for `level`.
fn level_word(level: LogLevel) -> String {
    level.as_str().to_ascii_uppercase()
}

/// Every audit status, each a status of the store's that SecMaster names.
const STATUSES: [AuditStatus; 13] = [
    AuditStatus::Execution(ExecutionStatus::Queued),
    AuditStatus::Execution(ExecutionStatus::Running),
    AuditStatus::Execution(ExecutionStatus::Completed),
    AuditStatus::Execution(ExecutionStatus::PartiallyFailed),
    AuditStatus::Execution(ExecutionStatus::Failed),
    AuditStatus::Execution(ExecutionStatus::Killed),
    AuditStatus::Step(NodeStatus::Pending),
    AuditStatus::Step(NodeStatus::Running),
    AuditStatus::Step(NodeStatus::Succeeded),
    AuditStatus::Step(NodeStatus::Failed),
    AuditStatus::Step(NodeStatus::Skipped),
    AuditStatus::Step(NodeStatus::TimedOut),
    AuditStatus::Step(NodeStatus::Killed),
];

const TRIGGERS: [TriggerType; 6] = [
    TriggerType::Manual,
    TriggerType::Debug,
    TriggerType::Webhook,
    TriggerType::Timer,
    TriggerType::Event,
    TriggerType::Playbook,
];

/// The words of `field`'s filter `value` (one word or several, separated by commas or
/// spaces, in any case); `None` when it names none.
fn words(field: &str, value: Option<&String>) -> Result<Option<Vec<String>>, SecMasterError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let mut list: Vec<String> = value
        .split([',', ' '])
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    list.sort_unstable();
    list.dedup();
    if list.len() > MAX_WORDS {
        return Err(invalid(format!(
            "`{field}` lists {} words; at most {MAX_WORDS}",
            list.len()
        )));
    }
    Ok((!list.is_empty()).then_some(list))
}

/// Of `all`, those whose SecMaster word is among `words`.
fn named<T: Copy, W: AsRef<str>>(
    words: Option<Vec<String>>,
    all: impl IntoIterator<Item = T>,
    word: impl Fn(T) -> W,
) -> Option<Vec<T>> {
    let words = words?;
    Some(
        all.into_iter()
            .filter(|t| words.iter().any(|w| w == word(*t).as_ref()))
            .collect(),
    )
}

/// The store's filter for SecMaster's `filter`.
fn audit_filter(filter: &Filter) -> Result<AuditFilter, SecMasterError> {
    let kinds = words("instance_type", filter.instance_type.as_ref())?;
    let statuses = words("status", filter.status.as_ref())?;
    let triggers = words("trigger_type", filter.trigger_type.as_ref())?;
    let levels = words("log_level", filter.log_level.as_ref())?;
    let contains = [
        ("input", &filter.input),
        ("output", &filter.output),
        ("error_msg", &filter.error_msg),
    ];
    for (name, value) in contains {
        if value
            .as_ref()
            .is_some_and(|value| value.chars().count() > tql::MAX_TEXT)
        {
            return Err(invalid(format!(
                "`{name}` is longer than {} characters",
                tql::MAX_TEXT
            )));
        }
    }
    let time = |name: &str, value: &Option<String>| {
        value
            .as_ref()
            .map(|value| {
                tql::parse_date(value).ok_or_else(|| {
                    invalid(format!(
                        "`{name}` is `{value}`, not a time like `2021-01-30 23:00:00` or \
                         `2021-01-30T23:00:00Z`"
                    ))
                })
            })
            .transpose()
    };
    Ok(AuditFilter {
        kinds: named(kinds, [AuditKind::Playbook, AuditKind::App], instance_word),
        statuses: named(statuses, STATUSES, status_word),
        trigger_types: named(triggers, TRIGGERS, trigger_word),
        log_levels: named(levels, LogLevel::ALL, level_word),
        action_id: filter.action_id.clone(),
        action_name: filter.action_name.clone(),
        instance_id: filter.instance_id.clone(),
        parent_instance_id: filter.parent_instance_id.clone(),
        input_contains: filter.input.clone(),
        output_contains: filter.output.clone(),
        error_contains: filter.error_msg.clone(),
        started_from: time("start_time", &filter.start_time)?,
        ended_by: time("end_time", &filter.end_time)?,
        scope: None,
    })
}

/// `time` as SecMaster writes it: RFC 3339 to the second.
fn secmaster_time(time: Option<chrono::DateTime<Utc>>) -> Value {
    time.map_or(Value::Null, |t| {
        json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    })
}

/// An audit row in SecMaster's shape and words.
fn audit_row(row: &AuditRow) -> Value {
    json!({
        "instance_type": instance_word(row.kind),
        "action_id": row.action_id,
        "action_name": row.action_name,
        "instance_id": row.instance_id,
        "parent_instance_id": row.parent_instance_id,
        "log_level": level_word(row.log_level),
        "input": row.input,
        "output": row.output,
        "error_msg": row.error_msg,
        "start_time": secmaster_time(row.start_time),
        "end_time": secmaster_time(row.end_time),
        "status": status_word(row.status),
        "trigger_type": trigger_word(row.trigger_type),
    })
}

fn required(params: &HashMap<String, String>, name: &str) -> Result<i64, SecMasterError> {
    let text = params
        .get(name)
        .ok_or_else(|| invalid(format!("`{name}` is required")))?;
    text.trim()
        .parse()
        .map_err(|_| invalid(format!("`{name}` is `{text}`, not a whole number")))
}

/// The audit log rows the body's filters match, a window of them.
pub(super) async fn audit_logs(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path((_project, workspace)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, SecMasterError> {
    if workspace != caller.tenant {
        return Err(refused(
            "SecMaster.20010001",
            format!("there is no workspace `{workspace}` for this caller"),
        ));
    }
    let offset = required(&params, "offset")?;
    let limit = required(&params, "limit")?;
    if offset < 0 || limit < 1 || offset.saturating_add(limit) > MAX_WINDOW {
        return Err(invalid(format!(
            "`offset` ({offset}) must be 0 or more and `limit` ({limit}) 1 or more, and \
             together at most {MAX_WINDOW}"
        )));
    }
    let order = match params.get("sort_key").map(String::as_str) {
        None | Some("start_time") => AuditOrder::Start,
        Some("end_time") => AuditOrder::End,
        Some(other) => {
            return Err(refused(
                "SecMaster.20030009",
                format!("`sort_key` is `{other}`; it must be start_time or end_time"),
            ));
        }
    };
    // In any case: `ASC` is `asc`.
    let sort_dir = params.get("sort_dir").map(|d| d.to_ascii_lowercase());
    let sort = match sort_dir.as_deref() {
        None | Some("desc") => Sort::NewestFirst,
        Some("asc") => Sort::OldestFirst,
        Some(_) => {
            let other = params.get("sort_dir").map_or("", String::as_str);
            return Err(refused(
                "SecMaster.20030010",
                format!("`sort_dir` is `{other}`; it must be asc or desc"),
            ));
        }
    };
    let filter: Filter = if body.iter().all(u8::is_ascii_whitespace) {
        Filter::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| invalid(format!("the body is not a valid filter: {e}")))?
    };
    let filter = AuditFilter {
        scope: Some(caller.scope()),
        ..audit_filter(&filter)?
    };
    let window = Window {
        offset,
        limit,
        sort,
    };
    let (rows, count) = service
        .blocking(move |store| store.audit_logs(&filter, window, order))
        .await?;
    let rows: Vec<Value> = rows.iter().map(audit_row).collect();
    let mut response = Json(json!({"count": count, "audit_logs": rows})).into_response();
    add_request_id(&mut response);
    Ok(response)
}
