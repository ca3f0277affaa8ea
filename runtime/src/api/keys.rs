//! `/api/v1/keys`: API keys, for an admin. A key's token is in the answer that makes it
//! and nowhere else; lists show who each key is, never a secret.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::{ApiError, Caller, Service, answers::Listing};
use crate::service::keys::Identity;
use crate::store::ApiKey;

/// What `POST /api/v1/keys` takes.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewKey {
    /// What the key is for.
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// The tenant it acts in: the caller's when not given. An admin key makes keys of
    /// its own tenant only; the server's own token, of any.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// A key just made: its record, and its token, shown this once.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct MadeKey {
    /// The key.
    #[serde(flatten)]
    pub key: ApiKey,
    /// Its token: send it as `Authorization: Bearer <token>` (or a vendor client's
    /// scheme). It is not kept, and cannot be shown again.
    pub token: String,
    /// Its signing secret, when the server has a signing key (`--key-file`): the secret
    /// key of clients that sign requests instead of sending the token (ThreatConnect's
    /// HMAC, Huawei Cloud's AK/SK), the key's `id` their access id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

/// Refuse a caller acting for an application (a JWT minted for one): it would make a
/// key of the whole tenant, outliving its token.
fn for_keys(caller: &Identity) -> Result<(), ApiError> {
    if caller.app.is_some() {
        return Err(ApiError::Forbidden(
            "a caller acting for an application manages no API keys".to_owned(),
        ));
    }
    Ok(())
}

/// `POST /api/v1/keys`.
pub(super) async fn create(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    for_keys(&caller)?;
    let new: NewKey = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not a key's: {e}")))?;
    let tenant = new.tenant.unwrap_or_else(|| caller.tenant.clone());
    if tenant != caller.tenant && !caller.all_tenants() {
        return Err(ApiError::Forbidden(format!(
            "an admin key of tenant `{}` makes keys of that tenant only",
            caller.tenant
        )));
    }
    let (key, token) = service.create_key(new.name, tenant, new.role).await?;
    let signing_secret = service.signing_secret(&key.id);
    let made = MadeKey {
        key,
        token,
        signing_secret,
    };
    Ok((StatusCode::CREATED, Json(made)).into_response())
}

/// `GET /api/v1/keys`.
pub(super) async fn list(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
) -> Result<Json<Listing<ApiKey>>, ApiError> {
    for_keys(&caller)?;
    let tenant = (!caller.all_tenants()).then_some(caller.tenant.as_str());
    let data = service.keys(tenant).await?;
    Ok(Json(Listing {
        count: i64::try_from(data.len()).unwrap_or(i64::MAX),
        data,
    }))
}

/// `DELETE /api/v1/keys/{id}`: revoke it; its record stays, revoked.
pub(super) async fn revoke(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<ApiKey>, ApiError> {
    for_keys(&caller)?;
    let tenant = (!caller.all_tenants()).then_some(caller.tenant.as_str());
    Ok(Json(service.revoke_key(tenant, &id).await?))
}
