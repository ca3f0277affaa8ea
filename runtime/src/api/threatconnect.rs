//! The ThreatConnect view: `/api/v3/playbook/executions`, its TQL filter, its field
//! list and its error shape (seed 004), over the same store as the native API.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{ApiError, Caller, Params, Service, flag, number_param, tql_param};
use crate::service;
use crate::store::{
    EXECUTION_FIELDS, ExecutionField, ExecutionFilter, ExecutionRow, OrderBy, Sort, Window,
};
use crate::tql;
use crate::trace::ExecutionStatus;

/// An error in ThreatConnect's shape: `{"errCode", "message", "status": "Error"}`.
pub(super) struct TcError(ApiError);

impl IntoResponse for TcError {
    fn into_response(self) -> Response {
        // 0x2001 is ThreatConnect's code for a TQL syntax error.
        let code = match &self.0 {
            ApiError::Tql(_) => "0x2001",
            ApiError::NotFound(_) => "0x1004",
            ApiError::Unauthorized(_)
            | ApiError::BadSignature(_)
            | ApiError::Forbidden(_)
            | ApiError::MisdirectedHost(_) => "0x1001",
            ApiError::BadRequest(_) | ApiError::Conflict(_) => "0x1002",
            ApiError::Internal(_) | ApiError::Unavailable(_) => "0x1000",
        };
        let body = json!({"errCode": code, "message": self.0.to_string(), "status": "Error"});
        self.0
            .with_cause((self.0.status(), Json(body)).into_response())
    }
}

impl From<ApiError> for TcError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<service::Error> for TcError {
    fn from(error: service::Error) -> Self {
        Self(error.into())
    }
}

pub(super) fn tc_time(time: Option<DateTime<Utc>>) -> Option<String> {
    time.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// An execution in ThreatConnect's shape (seed 000): a time that is not set is
/// absent, not null, as in the seed's failed example.
pub(super) fn tc_record(row: &ExecutionRow) -> Value {
    let mut record = serde_json::Map::new();
    record.insert("id".to_owned(), json!(row.num));
    if let Some(num) = row.playbook_num {
        record.insert("playbookId".to_owned(), json!(num));
    }
    record.insert("playbookXid".to_owned(), json!(row.header.playbook_id));
    if let Some(time) = tc_time(row.completed_at) {
        record.insert("completedTime".to_owned(), json!(time));
    }
    record.insert(
        "logLevel".to_owned(),
        json!(row.header.log_level.to_string().to_ascii_uppercase()),
    );
    record.insert(
        "status".to_owned(),
        serde_json::to_value(row.status).unwrap_or_default(),
    );
    if let Some(time) = tc_time(Some(row.header.queued_at)) {
        record.insert("queueTime".to_owned(), json!(time));
    }
    if let Some(time) = tc_time(row.started_at) {
        record.insert("startTime".to_owned(), json!(time));
    }
    Value::Object(record)
}

pub(super) async fn tc_list(
    State(service): State<Arc<Service>>,
    State(public_url): State<super::PublicUrl>,
    Extension(caller): Caller,
    headers: HeaderMap,
    Query(mut params): Params,
    body: axum::body::Bytes,
) -> Result<Json<Value>, TcError> {
    params.extend(body_params(&body)?);
    let start = number_param(&params, "resultStart", 0, 0..=i64::MAX)?;
    let limit = number_param(&params, "resultLimit", 100, 1..=10_000)?;
    let (sort, order) = sorting(params.get("sorting").map(String::as_str))?;
    // The count of every match only when asked for (`count=true`), and as ThreatConnect
    // does, only on the first page.
    let count = flag(&params, "count")? && start == 0;
    let filter = ExecutionFilter {
        tql: tql_param(&params, EXECUTION_FIELDS)?,
        order,
        scope: Some(caller.scope()),
    };
    let window = Window {
        offset: start,
        limit,
        sort,
    };
    let page = service
        .blocking(move |store| store.executions(&filter, window, count))
        .await?;
    // ThreatConnect: "the total number of failed and successful executions included in
    // the API response".
    let success = page
        .rows
        .iter()
        .filter(|r| r.status == ExecutionStatus::Completed)
        .count();
    let failure = page
        .rows
        .iter()
        .filter(|r| {
            matches!(
                r.status,
                ExecutionStatus::Failed
                    | ExecutionStatus::PartiallyFailed
                    | ExecutionStatus::Killed
            )
        })
        .count();
    let mut body = json!({
        "data": page.rows.iter().map(tc_record).collect::<Vec<_>>(),
        "status": "Success",
        "countSuccess": success,
        "countFailure": failure,
    });
    if let Some(total) = page.total {
        body["count"] = json!(total);
    }
    // Absolute, with the scheme the client used: tcex follows only links that start
    // with `https` behind TLS.
    let base = public_url.base(&headers);
    let link = |offset: i64| {
        let mut query: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| k.as_str() != "resultStart")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        query.sort();
        query.push(("resultStart".to_owned(), offset.to_string()));
        let encoded: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        format!("{base}/api/v3/playbook/executions?{}", encoded.join("&"))
    };
    if page.more {
        body["next"] = json!(link(start + limit));
    }
    if start > 0 {
        body["prev"] = json!(link((start - limit).max(0)));
    }
    Ok(Json(body))
}

/// The most keys of one `sorting`.
const MAX_SORT_KEYS: usize = 8;

/// ThreatConnect's `sorting`: keys separated by commas, each a TQL field with `asc`
/// (the default) or `desc`, then optionally `nullsfirst` or `nullslast`. A lone `id`
/// key is the window's own order (by number); without `sorting`, newest first.
fn sorting(text: Option<&str>) -> Result<(Sort, Vec<OrderBy<ExecutionField>>), TcError> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok((Sort::NewestFirst, Vec::new()));
    };
    let bad = |message: String| TcError::from(ApiError::BadRequest(message));
    let mut order = Vec::new();
    for key in text.split(',') {
        if order.len() == MAX_SORT_KEYS {
            return Err(bad(format!("`sorting` takes at most {MAX_SORT_KEYS} keys")));
        }
        let mut words = key.split_whitespace();
        let name = words.next().unwrap_or_default();
        let field = EXECUTION_FIELDS
            .iter()
            .find(|f| f.keyword.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                let names: Vec<&str> = EXECUTION_FIELDS.iter().map(|f| f.keyword).collect();
                bad(format!(
                    "`sorting` names `{name}`, which is not a field; the fields are {}",
                    names.join(", ")
                ))
            })?;
        let mut key = OrderBy {
            field: field.id,
            descending: false,
            nulls_first: None,
        };
        for word in words {
            match word.to_ascii_lowercase().as_str() {
                "asc" => key.descending = false,
                "desc" => key.descending = true,
                "nullsfirst" => key.nulls_first = Some(true),
                "nullslast" => key.nulls_first = Some(false),
                _ => {
                    return Err(bad(format!(
                        "`sorting`: `{word}` after `{name}` is not asc, desc, nullsfirst or \
                         nullslast"
                    )));
                }
            }
        }
        order.push(key);
    }
    // By number alone: the window's order, which pages by number; a bare `id` is
    // newest first, as it always was here.
    if let [only] = order.as_slice()
        && only.field == ExecutionField::Num
        && only.nulls_first.is_none()
    {
        let bare = text
            .split(',')
            .next()
            .is_some_and(|k| k.split_whitespace().count() == 1);
        let sort = if only.descending || bare {
            Sort::NewestFirst
        } else {
            Sort::OldestFirst
        };
        return Ok((sort, Vec::new()));
    }
    let last = order.last().is_some_and(|key| key.descending);
    Ok((
        if last {
            Sort::NewestFirst
        } else {
            Sort::OldestFirst
        },
        order,
    ))
}

/// The query parameters a GET carries in its body, as tcex sends them when its query
/// string would pass 2,000 characters: `{"data": {"tql": "…", "resultLimit": 100}}`.
/// Numbers and booleans are read as the query string would write them.
fn body_params(body: &[u8]) -> Result<Vec<(String, String)>, TcError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    #[derive(serde::Deserialize)]
    struct Body {
        data: serde_json::Map<String, Value>,
    }
    let body: Body = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body of this GET is read as the query's parameters, \
             `{{\"data\": {{\"tql\": …}}}}`: {e}"
        ))
    })?;
    body.data
        .into_iter()
        .map(|(name, value)| match value {
            Value::String(text) => Ok((name, text)),
            Value::Number(n) => Ok((name, n.to_string())),
            Value::Bool(b) => Ok((name, b.to_string())),
            _ => Err(ApiError::BadRequest(format!(
                "`data.{name}` in the body must be a string, a number or true/false"
            ))
            .into()),
        })
        .collect()
}

/// Percent-encode a query component.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub(super) async fn tc_get(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, TcError> {
    let row = super::visible_execution(&service, &caller, &id).await?;
    Ok(Json(json!({"data": tc_record(&row), "status": "Success"})))
}

/// `OPTIONS /api/v3/playbook/executions?show=readonly`: the record's fields.
pub(super) async fn tc_fields(Query(params): Params) -> Result<Json<Value>, TcError> {
    let show = params.get("show").map(|s| s.to_ascii_lowercase());
    if show.as_deref() != Some("readonly") {
        return Err(ApiError::BadRequest(
            "OPTIONS on this endpoint describes its fields: add `?show=readonly`".to_owned(),
        )
        .into());
    }
    let fields = [
        ("id", "Integer", "The Playbook execution's ID number."),
        (
            "playbookId",
            "Integer",
            "The ID number of the Playbook that was executed.",
        ),
        (
            "playbookXid",
            "String",
            "The XID of the Playbook that was executed.",
        ),
        (
            "completedTime",
            "DateTime",
            "The date and time when the Playbook execution completed.",
        ),
        (
            "logLevel",
            "String",
            "The log level used during the Playbook execution.",
        ),
        ("status", "String", "The Playbook execution's status."),
        (
            "queueTime",
            "DateTime",
            "The date and time when the Playbook execution was queued.",
        ),
        (
            "startTime",
            "DateTime",
            "The date and time when the Playbook execution started.",
        ),
    ];
    let data: Vec<Value> = fields
        .iter()
        .map(|(name, kind, description)| {
            json!({"name": name, "type": kind, "description": description, "readOnly": true})
        })
        .collect();
    Ok(Json(
        json!({"data": data, "count": data.len(), "status": "Success"}),
    ))
}

/// `OPTIONS /api/v3/playbook/executions/tql`: the TQL parameters and their types.
pub(super) async fn tc_tql() -> Json<Value> {
    let data: Vec<Value> = EXECUTION_FIELDS
        .iter()
        .map(|field| {
            let mut entry = json!({
                "keyword": field.keyword,
                "name": field.keyword,
                "type": field.kind.name(),
                "description": field.description,
            });
            if let tql::Type::Enum(words) = field.kind {
                entry["options"] = json!(words);
            }
            entry
        })
        .collect();
    Json(json!({"data": data, "count": data.len(), "status": "Success"}))
}
