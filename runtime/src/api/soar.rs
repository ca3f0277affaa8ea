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

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Caller, Service};
use crate::service::soar::ActionRunRequest;
use crate::store::{SoarCondition, SoarField, SoarLookup, SoarQuery};

/// An error in Splunk SOAR's shape.
pub(super) struct SoarError(ApiError);

impl From<ApiError> for SoarError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<crate::service::Error> for SoarError {
    fn from(error: crate::service::Error) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for SoarError {
    fn into_response(self) -> Response {
        let body = json!({"failed": true, "message": self.0.to_string()});
        self.0
            .with_cause((self.0.status(), Json(body)).into_response())
    }
}

fn bad(message: String) -> SoarError {
    SoarError(ApiError::BadRequest(message))
}

/// `GET /rest/version`: what Splunk SOAR clients call first, to check their credentials
/// (soarsdk's `test_authorization`). The version is wasp's.
pub(super) async fn version() -> Json<Value> {
    Json(json!({"version": env!("CARGO_PKG_VERSION"), "product": "wasp"}))
}

/// `POST /rest/action_run`.
pub(super) async fn create(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    body: Bytes,
) -> Result<Json<Value>, SoarError> {
    let request: ActionRunRequest = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("the body is not a valid action run: {e}")))?;
    let num = service.start_action_run(&caller.tenant, request).await?;
    Ok(Json(json!({
        "action_run_id": num,
        "message": "New action queued.",
        "success": true,
    })))
}

fn number(id: &str, what: &str) -> Result<i64, SoarError> {
    id.parse()
        .map_err(|_| SoarError(ApiError::NotFound(format!("there is no {what} `{id}`"))))
}

/// `GET /rest/action_run/{id}`.
pub(super) async fn get(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, SoarError> {
    let num = number(&id, "action run")?;
    let record = service
        .blocking(move |store| store.action_run(num, Some(&caller.tenant)))
        .await?;
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
    Extension(caller): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, SoarError> {
    let request: CancelRequest = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("expected {{\"cancel\": true}}: {e}")))?;
    if !request.cancel {
        return Err(bad("expected {\"cancel\": true}".to_owned()));
    }
    let num = number(&id, "action run")?;
    let record = service
        .blocking(move |store| store.action_run(num, Some(&caller.tenant)))
        .await?;
    let record = record
        .ok_or_else(|| SoarError(ApiError::NotFound(format!("there is no action run `{id}`"))))?;
    if service.cancel_action_run(num) {
        Ok(Json(json!({
            "cancelled": true,
            "message": format!("action run {num} is being cancelled"),
        })))
    } else {
        Err(SoarError(ApiError::Conflict(format!(
            "action run {num} is not running: it is {}",
            record["status"].as_str().unwrap_or("unknown")
        ))))
    }
}

/// Splunk's paging: `page` from 0, `page_size` (0 means all); default 10 a page.
fn paging(params: &HashMap<String, String>) -> Result<(i64, i64), SoarError> {
    let page = super::number_param(params, "page", 0, 0..=i64::MAX)?;
    let size = super::number_param(params, "page_size", 10, 0..=10_000)?;
    Ok((page, size))
}

/// The most records one list answers, for `page_size=0` ("all").
const MAX_ALL: i64 = 10_000;

/// The most `_filter_`/`_exclude_` conditions of one list, and values of one `__in`.
const MAX_CONDITIONS: usize = 32;
const MAX_IN_VALUES: usize = 1_000;

/// A Splunk list's filters, order and page: `_filter_<field>[__<lookup>]=<value>` and
/// `_exclude_…` (Django's lookups: exact, in, gt, gte, lt, lte, contains, icontains,
/// startswith, isnull; the value JSON, `"failed"`, `3`, `["a","b"]`, or a bare word),
/// `sort=<field>` with `order=asc|desc`, `page` and `page_size`. Other parameters
/// (`include_expensive`, `pretty`) are not filters.
fn soar_query(params: &HashMap<String, String>, tenant: &str) -> Result<SoarQuery, SoarError> {
    let (page, size) = paging(params)?;
    let mut conditions = Vec::new();
    let mut names: Vec<&String> = params.keys().collect();
    names.sort();
    for name in names {
        let (rest, negated) = match (
            name.strip_prefix("_filter_"),
            name.strip_prefix("_exclude_"),
        ) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => continue,
        };
        if conditions.len() == MAX_CONDITIONS {
            return Err(bad(format!(
                "a list takes at most {MAX_CONDITIONS} `_filter_` and `_exclude_` conditions"
            )));
        }
        let (field, lookup) = match rest.split_once("__") {
            Some((field, lookup)) => (field, lookup),
            None => (rest, "exact"),
        };
        let field = SoarField::new(field).ok_or_else(|| {
            bad(format!(
                "`{name}`: `{field}` is not a field name (a-z, 0-9 and `_`)"
            ))
        })?;
        let lookup = SoarLookup::named(lookup).ok_or_else(|| {
            bad(format!(
                "`{name}`: `{lookup}` is not a lookup (exact, in, gt, gte, lt, lte, contains, \
                 icontains, startswith, isnull)"
            ))
        })?;
        let text = &params[name];
        let mut value =
            serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.clone()));
        match (lookup, &value) {
            (SoarLookup::In, Value::Array(items)) if items.len() > MAX_IN_VALUES => {
                return Err(bad(format!(
                    "`{name}` lists {} values; at most {MAX_IN_VALUES}",
                    items.len()
                )));
            }
            (SoarLookup::In, Value::Array(_)) => {}
            (SoarLookup::In, _) => value = Value::Array(vec![value]),
            // Python's spelling too, as clients write it.
            (SoarLookup::IsNull, Value::String(word)) => {
                value = Value::Bool(!word.eq_ignore_ascii_case("false"));
            }
            (_, Value::Array(_) | Value::Object(_)) => {
                return Err(bad(format!("`{name}` compares with one value, not {text}")));
            }
            _ => {}
        }
        conditions.push(SoarCondition {
            field,
            lookup,
            value,
            negated,
        });
    }
    let sort = match params.get("sort") {
        None => None,
        Some(field) => {
            let field = SoarField::new(field)
                .ok_or_else(|| bad(format!("`sort` is `{field}`, not a field name")))?;
            let descending = match params.get("order").map(|o| o.to_ascii_lowercase()) {
                None => false,
                Some(order) if order == "asc" => false,
                Some(order) if order == "desc" => true,
                Some(_) => {
                    let order = params.get("order").map_or("", String::as_str);
                    return Err(bad(format!("`order` is `{order}`; it must be asc or desc")));
                }
            };
            Some((field, descending))
        }
    };
    Ok(SoarQuery {
        conditions,
        sort,
        offset: page.saturating_mul(size),
        // `page_size=0` is "all", up to the largest page any list answers.
        limit: if size == 0 { MAX_ALL } else { size },
        tenant: Some(tenant.to_owned()),
    })
}

/// `GET /rest/action_run`: action runs, filtered, ordered and paged as Splunk lists are.
pub(super) async fn list_action_runs(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, SoarError> {
    let query = soar_query(&params, &caller.tenant)?;
    let (_, size) = paging(&params)?;
    let (runs, count) = service
        .blocking(move |store| store.action_runs(&query))
        .await?;
    Ok(page_of(runs, count, size))
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
    Extension(caller): Caller,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, SoarError> {
    app_runs(&service, &caller.tenant, Some(id), &params).await
}

/// `GET /rest/app_run`: every app run.
pub(super) async fn all_app_runs(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, SoarError> {
    app_runs(&service, &caller.tenant, None, &params).await
}

async fn app_runs(
    service: &Arc<Service>,
    tenant: &str,
    id: Option<String>,
    params: &HashMap<String, String>,
) -> Result<Json<Value>, SoarError> {
    let action_run = match id {
        Some(id) => {
            let num = number(&id, "action run")?;
            let owner = tenant.to_owned();
            if service
                .blocking(move |store| store.action_run(num, Some(&owner)))
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
    let query = soar_query(params, tenant)?;
    let (_, size) = paging(params)?;
    let (mut runs, count) = service
        .blocking(move |store| store.app_runs(action_run, &query))
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
    Extension(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, SoarError> {
    let num = number(&id, "app run")?;
    let run = service
        .blocking(move |store| store.app_run(num, Some(&caller.tenant)))
        .await?;
    run.map(Json)
        .ok_or_else(|| SoarError(ApiError::NotFound(format!("there is no app run `{id}`"))))
}

/// `GET /rest/app_run/{id}/action_result?page=&page_size=`: the results of an app run,
/// one per parameter set.
pub(super) async fn action_results(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, SoarError> {
    let num = number(&id, "app run")?;
    let run = service
        .blocking(move |store| store.app_run(num, Some(&caller.tenant)))
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
