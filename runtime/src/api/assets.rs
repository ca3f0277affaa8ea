//! `/api/v1/assets`: list, read, create or replace, and delete assets.
//!
//! An asset created here is kept in the database with its secrets as references
//! (`{"env": "WASP_SECRET_…"}`, or `{"file": "name"}` inside `wasp serve
//! --secrets-dir`), resolved by the server process; a secret's value is never accepted,
//! stored or shown, and the API cannot reach the rest of the server's environment or
//! files. Assets from the assets file are listed too
//! (`"source": "file"`) and are read-only here: change them in the file.

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, Service};
use crate::assets::{Asset, AssetSpec, Source, ValueSpec};

/// Refuse what an asset sent to the API may not read on the server: a file as a plain
/// setting, an environment variable outside `WASP_SECRET_*`, a file outside the
/// secrets directory. Without this, anyone holding the API token could copy the
/// server's own credentials into an asset and send them to a host of their choosing.
fn check_reach(name: &str, spec: &AssetSpec, secrets_dir: Option<&FsPath>) -> Result<(), String> {
    for (key, value) in &spec.settings {
        if matches!(value, ValueSpec::File { .. }) {
            return Err(format!(
                "asset `{name}`, setting `{key}`: an asset created through the API gives a setting's value, not a file of the server"
            ));
        }
    }
    for (key, secret) in &spec.secrets {
        let what = format!("asset `{name}`, secret `{key}`");
        if let Some(refused) = secret.env.as_deref().and_then(crate::secrets::refuse_env) {
            return Err(format!("{what}: {refused}"));
        }
        if let Some(file) = &secret.file {
            crate::secrets::confine(secrets_dir, file).map_err(|e| format!("{what}: {e}"))?;
        }
    }
    Ok(())
}

/// What the API shows of an asset: its definition, with secrets as references.
fn view(asset: &Asset) -> Value {
    let mut view = serde_json::to_value(&asset.spec).unwrap_or_else(|_| json!({}));
    if let Value::Object(fields) = &mut view {
        fields.insert("name".into(), json!(asset.name));
        fields.insert("source".into(), json!(asset.source));
    }
    view
}

/// Load the assets the API created earlier into the runner; one that no longer
/// resolves (a variable unset, a file gone) is skipped, saying why on stderr.
pub(crate) fn load_stored(service: &Service) -> Result<(), crate::store::Error> {
    for (name, spec) in service.store.assets()? {
        if service
            .runner
            .assets()
            .get(&name)
            .is_some_and(|a| a.source == Source::File)
        {
            eprintln!(
                "asset `{name}` from the database has the name of one in the assets file; the file's is used"
            );
            continue;
        }
        let base = service.secrets_dir.as_deref().unwrap_or(FsPath::new("."));
        let resolved = serde_json::from_value::<AssetSpec>(spec)
            .map_err(|e| e.to_string())
            .and_then(|spec| {
                check_reach(&name, &spec, service.secrets_dir.as_deref())?;
                spec.resolve(&name, base, Source::Api)
            });
        match resolved {
            Ok(asset) => service.runner.assets().put(asset),
            Err(problem) => {
                eprintln!("asset `{name}` from the database cannot be used: {problem}");
            }
        }
    }
    Ok(())
}

/// `GET /api/v1/assets`.
pub(super) async fn list(State(service): State<Arc<Service>>) -> Json<Value> {
    let data: Vec<Value> = service
        .runner
        .assets()
        .list()
        .iter()
        .map(|asset| view(asset))
        .collect();
    Json(json!({"count": data.len(), "data": data}))
}

/// The asset called `name`, or a 404 naming it.
fn existing(service: &Service, name: &str) -> Result<Arc<Asset>, ApiError> {
    service
        .runner
        .assets()
        .get(name)
        .ok_or_else(|| ApiError::NotFound(format!("there is no asset `{name}`")))
}

/// `GET /api/v1/assets/{name}`.
pub(super) async fn get(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let asset = existing(&service, &name)?;
    Ok(Json(view(&asset)))
}

/// `POST /api/v1/assets`: a new asset; the body (JSON or YAML) carries its `name`.
pub(super) async fn create(
    State(service): State<Arc<Service>>,
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
    if service.runner.assets().get(&name).is_some() {
        return Err(ApiError::Conflict(format!(
            "an asset `{name}` exists; replace it with PUT /api/v1/assets/{name}"
        )));
    }
    let asset = save(&service, &name, Value::Object(fields)).await?;
    Ok((StatusCode::CREATED, Json(view(&asset))).into_response())
}

/// `PUT /api/v1/assets/{name}`: create or replace. Steps already running keep the
/// asset they started with.
pub(super) async fn put(
    State(service): State<Arc<Service>>,
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
    let existed = service.runner.assets().get(&name).is_some();
    let asset = save(&service, &name, Value::Object(fields)).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(view(&asset))).into_response())
}

/// `DELETE /api/v1/assets/{name}`.
pub(super) async fn delete(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let asset = existing(&service, &name)?;
    read_only(&asset)?;
    let key = name.clone();
    service
        .blocking(move |store| store.delete_asset(&key))
        .await?;
    service.runner.assets().remove(&name);
    Ok(Json(view(&asset)))
}

fn read_only(asset: &Asset) -> Result<(), ApiError> {
    if asset.source == Source::File {
        return Err(ApiError::Conflict(format!(
            "asset `{}` comes from the assets file; change it there",
            asset.name
        )));
    }
    Ok(())
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

/// Check, resolve and store the asset `name` defined by `spec`, then use it.
async fn save(service: &Arc<Service>, name: &str, spec: Value) -> Result<Arc<Asset>, ApiError> {
    if let Some(existing) = service.runner.assets().get(name) {
        read_only(&existing)?;
    }
    let spec: AssetSpec = serde_json::from_value(spec).map_err(|e| {
        let hint = if e.to_string().contains("`value`") {
            "; a secret is given as {\"env\": VAR} or {\"file\": PATH}: wasp never stores a secret's value"
        } else {
            ""
        };
        ApiError::BadRequest(format!("asset `{name}`: {e}{hint}"))
    })?;
    if service.runner.apps().get(&spec.app).is_none() {
        return Err(ApiError::BadRequest(format!(
            "asset `{name}`: there is no app `{}`",
            spec.app
        )));
    }
    let secrets_dir = service.secrets_dir.as_deref();
    check_reach(name, &spec, secrets_dir).map_err(ApiError::BadRequest)?;
    let asset = spec
        .resolve(name, secrets_dir.unwrap_or(FsPath::new(".")), Source::Api)
        .map_err(ApiError::BadRequest)?;
    let stored = serde_json::to_value(&asset.spec).unwrap_or_default();
    let (key, app) = (name.to_owned(), asset.app.clone());
    service
        .blocking(move |store| store.save_asset(&key, &app, &stored))
        .await?;
    service.runner.assets().put(asset);
    service
        .runner
        .assets()
        .get(name)
        .ok_or_else(|| ApiError::Internal(format!("asset `{name}` vanished after saving")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> AssetSpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn api_assets_reach_only_prefixed_variables_and_the_secrets_directory() {
        let dir = Some(FsPath::new("/srv/wasp-secrets"));
        let allowed = spec("app: a\nsecrets: {k: {env: WASP_SECRET_K}, f: {file: intel/key}}");
        assert_eq!(check_reach("x", &allowed, dir), Ok(()));
        for (yaml, secrets_dir, expected) in [
            (
                "app: a\nsecrets: {k: {env: AWS_SECRET_ACCESS_KEY}}",
                dir,
                "WASP_SECRET_*",
            ),
            (
                "app: a\nsecrets: {k: {file: ../etc/shadow}}",
                dir,
                "plain relative path",
            ),
            (
                "app: a\nsecrets: {k: {file: /etc/shadow}}",
                dir,
                "plain relative path",
            ),
            (
                "app: a\nsecrets: {k: {file: key}}",
                None,
                "no secrets directory",
            ),
            (
                "app: a\nsettings: {k: {file: key}}",
                dir,
                "not a file of the server",
            ),
        ] {
            let error = check_reach("x", &spec(yaml), secrets_dir).unwrap_err();
            assert!(error.contains(expected), "{yaml}: {error}");
            assert!(error.starts_with("asset `x`"), "{error}");
        }
    }
}
