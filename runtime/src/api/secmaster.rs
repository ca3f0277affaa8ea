//! The Huawei Cloud SecMaster view (seed 004):
//! `POST /v1/{project_id}/workspaces/{workspace_id}/soc/playbooks/instances/auditlogs`.
//!
//! One audit row per instance: an execution is a PLAYBOOK instance, each of its step
//! runs an APP instance whose `parent_instance_id` is the execution. Statuses and
//! trigger types are SecMaster's words (FINISHED, FAILED, TERMINATED…; TIMER, EVENT,
//! MANUAL, DEBUG). wasp has one tenant: any project and workspace id is accepted.
//!
//! Filters, as the seed's example request shows them: `instance_type`, `status`,
//! `trigger_type` and `log_level` take one word or several (separated by commas or
//! spaces) and match any; the ids and `action_name` match exactly; `input`, `output`
//! and `error_msg` match text they contain; `start_time` keeps rows that started at or
//! after it, `end_time` rows that ended at or before it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::Service;
use crate::store::{Query as StoreQuery, Sort};
use crate::tql;

/// The most rows `offset + limit` may reach.
const MAX_WINDOW: i64 = 10_000;
/// The most words a word filter (`status`, `instance_type`, …) may list.
const MAX_WORDS: usize = 64;

/// An error in SecMaster's shape: `{"code", "message"}`.
pub(super) struct SecMasterError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// `SecMaster.20030001`: invalid parameters.
fn invalid(message: String) -> SecMasterError {
    SecMasterError {
        status: StatusCode::BAD_REQUEST,
        code: "SecMaster.20030001",
        message,
    }
}

impl IntoResponse for SecMasterError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(error = %self.message, "request failed");
        }
        let message = if self.status.is_server_error() {
            "internal error".to_owned()
        } else {
            self.message
        };
        let mut response = (
            self.status,
            Json(json!({"code": self.code, "message": message})),
        )
            .into_response();
        add_request_id(&mut response);
        response
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
            status: error.status(),
            code: "SecMaster.20030001",
            message: error.to_string(),
        }
    }
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

/// The SQL condition of `filter` over the audit rows; values are bound, never pasted.
fn condition(filter: &Filter) -> Result<tql::Condition, SecMasterError> {
    let mut parts = Vec::new();
    let mut params = Vec::new();
    let words = [
        ("a.instance_type", &filter.instance_type),
        ("a.status", &filter.status),
        ("a.trigger_type", &filter.trigger_type),
        ("a.log_level", &filter.log_level),
    ];
    for (column, value) in words {
        let Some(value) = value else { continue };
        let mut list: Vec<String> = value
            .split([',', ' '])
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_uppercase)
            .collect();
        list.sort_unstable();
        list.dedup();
        if list.len() > MAX_WORDS {
            return Err(invalid(format!(
                "`{}` lists {} words; at most {MAX_WORDS}",
                column.trim_start_matches("a."),
                list.len()
            )));
        }
        if list.is_empty() {
            continue;
        }
        parts.push(format!(
            "{column} IN ({})",
            vec!["?"; list.len()].join(", ")
        ));
        params.extend(list.into_iter().map(tql::Param::Text));
    }
    let exact = [
        ("a.action_id", &filter.action_id),
        ("a.action_name", &filter.action_name),
        ("a.instance_id", &filter.instance_id),
        ("a.parent_instance_id", &filter.parent_instance_id),
    ];
    for (column, value) in exact {
        if let Some(value) = value {
            parts.push(format!("{column} = ?"));
            params.push(tql::Param::Text(value.clone()));
        }
    }
    let contains = [
        ("a.input", &filter.input),
        ("a.output", &filter.output),
        ("a.error_msg", &filter.error_msg),
    ];
    for (column, value) in contains {
        if let Some(value) = value {
            if value.chars().count() > tql::MAX_TEXT {
                return Err(invalid(format!(
                    "`{}` is longer than {} characters",
                    column.trim_start_matches("a."),
                    tql::MAX_TEXT
                )));
            }
            parts.push(format!("{column} LIKE ? ESCAPE '\\'"));
            params.push(tql::Param::Text(format!("%{}%", tql::escape_like(value))));
        }
    }
    let times = [
        ("start_time", "a.start_time >= ?", &filter.start_time),
        ("end_time", "a.end_time <= ?", &filter.end_time),
    ];
    for (name, test, value) in times {
        let Some(value) = value else { continue };
        let time = tql::parse_date(value).ok_or_else(|| {
            invalid(format!(
                "`{name}` is `{value}`, not a time like `2021-01-30 23:00:00` or \
                 `2021-01-30T23:00:00Z`"
            ))
        })?;
        parts.push(test.to_owned());
        params.push(tql::Param::Integer(time.timestamp_millis()));
    }
    let sql = if parts.is_empty() {
        "1".to_owned()
    } else {
        parts
            .iter()
            .map(|p| format!("({p})"))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    Ok(tql::Condition { sql, params })
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
    Path((_project, _workspace)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, SecMasterError> {
    let offset = required(&params, "offset")?;
    let limit = required(&params, "limit")?;
    if offset < 0 || limit < 1 || offset.saturating_add(limit) > MAX_WINDOW {
        return Err(invalid(format!(
            "`offset` ({offset}) must be 0 or more and `limit` ({limit}) 1 or more, and \
             together at most {MAX_WINDOW}"
        )));
    }
    let by_end = match params.get("sort_key").map(String::as_str) {
        None | Some("start_time") => false,
        Some("end_time") => true,
        Some(other) => {
            return Err(SecMasterError {
                status: StatusCode::BAD_REQUEST,
                code: "SecMaster.20030009",
                message: format!("`sort_key` is `{other}`; it must be start_time or end_time"),
            });
        }
    };
    let sort = match params.get("sort_dir").map(String::as_str) {
        None | Some("desc") => Sort::NewestFirst,
        Some("asc") => Sort::OldestFirst,
        Some(other) => {
            return Err(SecMasterError {
                status: StatusCode::BAD_REQUEST,
                code: "SecMaster.20030010",
                message: format!("`sort_dir` is `{other}`; it must be asc or desc"),
            });
        }
    };
    let filter: Filter = if body.iter().all(u8::is_ascii_whitespace) {
        Filter::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| invalid(format!("the body is not a valid filter: {e}")))?
    };
    let query = StoreQuery {
        condition: condition(&filter)?,
        offset,
        limit,
        sort,
        count: true,
    };
    let (rows, count) = service
        .blocking(move |store| store.audit_logs(&query, by_end))
        .await?;
    let mut response = Json(json!({"count": count, "audit_logs": rows})).into_response();
    add_request_id(&mut response);
    Ok(response)
}
