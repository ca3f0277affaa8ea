//! `/api/v1/assets`: list, read, create or replace, and delete assets (see
//! `service::assets` for what an asset created here may hold).
//!
//! Assets from the assets file are listed too (`"source": "file"`) and are read-only
//! here: change them in the file.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::{ApiError, Caller, Service};
use crate::assets::Asset;

/// What the API shows of an asset: its definition, with secrets as references.
fn view(asset: &Asset) -> Value {
    let mut view = serde_json::to_value(&asset.spec).unwrap_or_else(|_| json!({}));
    if let Value::Object(fields) = &mut view {
        fields.insert("name".into(), json!(asset.name));
        fields.insert("source".into(), json!(asset.source));
    }
    view
}

/// `GET /api/v1/assets`.
pub(super) async fn list(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
) -> Json<Value> {
    let data: Vec<Value> = service
        .assets(&caller.tenant)
        .iter()
        .map(|asset| view(asset))
        .collect();
    Json(json!({"count": data.len(), "data": data}))
}

/// `GET /api/v1/assets/{name}`.
pub(super) async fn get(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let asset = service.asset(&caller.tenant, &name)?;
    Ok(Json(view(&asset)))
}

/// `POST /api/v1/assets`: a new asset; the body (JSON or YAML) carries its `name`.
pub(super) async fn create(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut fields: serde_json::Map<String, Value> = parse(&body)?;
    let name = match fields.remove("name") {
        Some(Value::String(name)) => name,
        Some(_) => return Err(ApiError::BadRequest("`name` must be a string".into())),
        None => {
            return Err(ApiError::BadRequest(
                "the asset has no `name`; give one, or PUT /api/v1/assets/{name}".into(),
            ));
        }
    };
    let (_, asset) = service
        .save_asset(&caller.tenant, &name, Value::Object(fields), false)
        .await?;
    Ok((StatusCode::CREATED, Json(view(&asset))).into_response())
}

/// `PUT /api/v1/assets/{name}`: create or replace. Steps already running keep the
/// asset they started with.
pub(super) async fn put(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut fields: serde_json::Map<String, Value> = parse(&body)?;
    match fields.remove("name") {
        Some(Value::String(named)) if named != name => {
            return Err(ApiError::BadRequest(format!(
                "the body names asset `{named}`, but this is asset `{name}`"
            )));
        }
        _ => {}
    }
    let (replaced, asset) = service
        .save_asset(&caller.tenant, &name, Value::Object(fields), true)
        .await?;
    let status = if replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(view(&asset))).into_response())
}

/// `DELETE /api/v1/assets/{name}`.
pub(super) async fn delete(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let asset = service.delete_asset(&caller.tenant, &name).await?;
    Ok(Json(view(&asset)))
}

fn parse(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("the body is not UTF-8 text".into()))?;
    let value: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text)
            .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?
    } else {
        serde_saphyr::from_str(text)
            .map_err(|e| ApiError::BadRequest(format!("the body is not valid YAML: {e}")))?
    };
    match value {
        Value::Object(fields) => Ok(fields),
        _ => Err(ApiError::BadRequest(
            "the body must be an asset: an object with `app` and its settings".into(),
        )),
    }
}
