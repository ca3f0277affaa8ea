//! The HTTP server: the native API under `/api/v1` and the ThreatConnect view under
//! `/api/v3/playbook/executions`, over one [`Service`] that starts executions and
//! reads the [`Store`].
//!
//! Handlers stay thin: parse, call the service or the store, map the error to a status.
//! Bad input is a 4xx whose message says what to fix; a store failure is a 500 that
//! says "internal error" to the client and logs the cause.

mod answers;
mod assets;
mod events;
mod export;
mod keys;
mod listen;
pub mod openapi;
mod secmaster;
mod signatures;
mod soar;
mod threatconnect;
mod triggers;
mod web;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::Utc;
use serde_json::{Value, json};
use tracing::Instrument as _;

pub use listen::{Edge, check_exposure, raise_descriptor_limit, weak_token};

use crate::playbook::{NodeKind, Playbook};
use crate::service::keys::{Identity, Role};
use crate::service::{self, Report, Service, Started, Which};
use crate::store::{
    self, EXECUTION_FIELDS, ExecutionFilter, ExecutionRecord, LOG_FIELDS, LogFilter, STEP_FIELDS,
    Sort, StepFilter, StepRunRow, Window,
};
use crate::tql;
use crate::trace::LogLevel;
use crate::trace::TriggerType;

/// The largest request body accepted (a trigger payload holding a whole email fits).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long a request may take, except a run that waits for its execution (which its
/// playbook's `max_runtime` bounds).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: the message says what to fix.
    #[error("{0}")]
    BadRequest(String),
    /// A TQL query does not parse or does not fit the fields.
    #[error("invalid TQL query: {0}")]
    Tql(#[from] tql::Error),
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// It cannot be done in the thing's current state.
    #[error("{0}")]
    Conflict(String),
    /// No valid token: the message names the schemes the view's clients use.
    #[error("this server requires {0}")]
    Unauthorized(&'static str),
    /// A signed request whose signature cannot be accepted: the message says why.
    #[error("the request's signature is refused: {0}")]
    BadSignature(String),
    /// Refused whoever asks: the message says why.
    #[error("{0}")]
    Forbidden(String),
    /// The request names the server by a name it does not answer to (`Host`).
    #[error("{0}")]
    MisdirectedHost(String),
    /// It cannot be done now for a reason on the server's side, which its log names.
    #[error("{0}")]
    Unavailable(String),
    /// wasp failed; the cause is logged (once, by [`log_failures`]), not sent.
    #[error("internal error")]
    Internal(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// A 500 caused by `cause`.
    fn internal(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Arc::new(cause))
    }

    /// `response`, carrying this error's cause when it is a 5xx, for [`log_failures`].
    fn with_cause(&self, mut response: Response) -> Response {
        if let ApiError::Internal(cause) = self {
            response.extensions_mut().insert(Cause(Arc::clone(cause)));
        }
        response
    }
}

impl From<service::Error> for ApiError {
    fn from(error: service::Error) -> Self {
        use service::Error as E;
        match error {
            E::Invalid(message) => Self::BadRequest(message),
            E::NotFound(message) => Self::NotFound(message),
            E::Conflict(message) => Self::Conflict(message),
            E::Unavailable(message) => Self::Unavailable(message),
            internal @ (E::Store(_) | E::Write(_) | E::Task(_)) => Self::internal(internal),
        }
    }
}

impl From<store::Error> for ApiError {
    fn from(error: store::Error) -> Self {
        Self::internal(error)
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::internal(error)
    }
}

/// A cause that is only words: a state wasp should never reach.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Bug(&'static str);

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Tql(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unauthorized(_) | ApiError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::MisdirectedHost(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let response = (
            status,
            Json(answers::Problem {
                error: self.to_string(),
                status: status.as_u16(),
            }),
        )
            .into_response();
        self.with_cause(response)
    }
}

/// The router over `service`, every route under its limits; `public_url` is the address
/// clients reach it by, when configured.
pub fn router(service: Arc<Service>, edge: &Edge) -> Router {
    let server = Server {
        service,
        token: Token(edge.token.clone().map(Arc::from)),
        public_url: PublicUrl(edge.public_url.clone().map(Arc::from)),
        replays: Arc::default(),
        metrics_from_loopback: edge.metrics_from_loopback,
        ready: Arc::default(),
    };
    let limited = Router::new()
        .route(
            "/api/v1/openapi.json",
            get(|| async { Json(openapi::document()) }),
        )
        .route(
            "/api/v1/playbooks",
            get(list_playbooks).post(create_playbook),
        )
        .route(
            "/api/v1/playbooks/{id}",
            get(get_playbook)
                .put(update_playbook)
                .delete(delete_playbook),
        )
        // Seed 003's path for the same records.
        .route(
            "/api/v1/soc/playbooks",
            get(list_playbooks).post(create_playbook),
        )
        .route(
            "/api/v1/soc/playbooks/{id}",
            get(get_playbook)
                .put(update_playbook)
                .delete(delete_playbook),
        )
        .route("/api/v1/keys", get(keys::list).post(keys::create))
        .route("/api/v1/keys/{id}", axum::routing::delete(keys::revoke))
        .route("/api/v1/assets", get(assets::list).post(assets::create))
        .route(
            "/api/v1/assets/{name}",
            get(assets::get).put(assets::put).delete(assets::delete),
        )
        .route("/api/v1/executions", get(list_executions))
        .route("/api/v1/executions/{id}", get(get_execution))
        .route("/api/v1/executions/{id}/kill", post(kill_execution))
        .route(
            "/api/v1/executions/{id}/steps/{node}/replay",
            post(replay_step),
        )
        .route("/api/v1/executions/{id}/steps", get(execution_steps))
        .route("/api/v1/executions/{id}/logs", get(execution_logs))
        .route(
            "/api/v1/executions/{id}/oslogs.zip",
            get(export::execution_os_logs),
        )
        .route("/api/v1/steps", get(list_steps))
        .route("/api/v1/logs", get(list_logs))
        .route(
            "/api/v3/playbook/executions",
            get(threatconnect::tc_list).options(threatconnect::tc_fields),
        )
        .route(
            "/api/v3/playbook/executions/tql",
            axum::routing::options(threatconnect::tc_tql),
        )
        .route(
            "/api/v3/playbook/executions/{id}",
            get(threatconnect::tc_get),
        )
        .route("/rest/version", get(soar::version))
        .route(
            "/rest/action_run",
            get(soar::list_action_runs).post(soar::create),
        )
        .route("/rest/action_run/{id}", get(soar::get).post(soar::cancel))
        .route("/rest/action_run/{id}/app_runs", get(soar::app_runs_of))
        .route("/rest/app_run", get(soar::all_app_runs))
        .route("/rest/app_run/{id}", get(soar::app_run))
        .route(
            "/rest/app_run/{id}/action_result",
            get(soar::action_results),
        )
        .route(
            "/v1/{project_id}/workspaces/{workspace_id}/soc/playbooks/instances/auditlogs",
            post(secmaster::audit_logs),
        )
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    // Runs that wait and event streams last as long as executions do.
    Router::new()
        .route("/api/v1/playbooks/{id}/run", post(run_playbook))
        .route("/api/v1/soc/playbooks/{id}/run", post(run_playbook))
        .route(
            "/api/v1/executions/{id}/events",
            get(events::execution_events),
        )
        .route(
            "/api/v1/events",
            get(events::all_events).post(triggers::event),
        )
        .merge(limited)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(server.clone(), authorize))
        // The page holds no data: it asks for the token and sends it with each call.
        .merge(web::router())
        // A signed webhook is authenticated by its signature; the handler asks for the
        // token otherwise.
        .route("/api/v1/hooks/{id}", post(triggers::hook))
        // For a supervisor or a load balancer: the process answers, and whether it is
        // ready to serve. Unauthenticated, so they say nothing else.
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        // For Prometheus: the server's own token (the metrics span every tenant), or
        // nothing from this machine with --metrics-from-loopback.
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(server.clone(), sessions))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&server.service),
            while_loading,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&server.service),
            count_requests,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            listen::BODY_TIMEOUT,
        ))
        .layer(middleware::from_fn(log_failures))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(server)
}

/// What the handlers share: the service, and what the edge checks.
#[derive(Clone)]
struct Server {
    service: Arc<Service>,
    token: Token,
    public_url: PublicUrl,
    /// Signed changes accepted lately.
    replays: Arc<Replays>,
    /// Whether `/metrics` answers a scraper on this machine without a token.
    metrics_from_loopback: bool,
    /// The last readiness answer, and when it was made.
    ready: Arc<tokio::sync::Mutex<Option<(std::time::Instant, bool)>>>,
}

/// The address clients reach the server by, when configured (`--public-url`).
#[derive(Clone)]
struct PublicUrl(Option<Arc<str>>);

impl PublicUrl {
    /// The scheme and host of a link back to this server in the answer to a request
    /// with `headers`: the configured address, else the request's `Host` with the scheme
    /// a proxy in front names (`X-Forwarded-Proto`, `Forwarded: proto=`), else `http`.
    fn base(&self, headers: &axum::http::HeaderMap) -> String {
        if let Some(url) = &self.0 {
            return url.to_string();
        }
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let host = text(header::HOST.as_str()).unwrap_or("localhost");
        let forwarded = text("forwarded").and_then(|value| {
            value
                .split([';', ','])
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(key, _)| key.eq_ignore_ascii_case("proto"))
                .map(|(_, proto)| proto.trim_matches('"'))
        });
        let proto = text("x-forwarded-proto")
            .and_then(|p| p.split(',').next())
            .map(str::trim)
            .or(forwarded);
        let scheme = match proto {
            Some(p) if p.eq_ignore_ascii_case("https") => "https",
            _ => "http",
        };
        format!("{scheme}://{host}")
    }
}

impl axum::extract::FromRef<Server> for PublicUrl {
    fn from_ref(server: &Server) -> Self {
        server.public_url.clone()
    }
}

/// The server's token, when it has one: every request must carry it.
#[derive(Clone)]
struct Token(Option<Arc<str>>);

impl axum::extract::FromRef<Server> for Arc<Service> {
    fn from_ref(server: &Server) -> Self {
        Arc::clone(&server.service)
    }
}

impl axum::extract::FromRef<Server> for Token {
    fn from_ref(server: &Server) -> Self {
        server.token.clone()
    }
}

/// The cause of a 5xx, put on the response by whichever view rendered it, so that
/// [`log_failures`] logs it once.
#[derive(Clone)]
struct Cause(Arc<dyn std::error::Error + Send + Sync>);

/// Log the cause of every answer that failed on the server's side, once, with the
/// request it answered; the client is told only "internal error".
async fn log_failures(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = next.run(request).await;
    if let Some(Cause(cause)) = response.extensions().get::<Cause>() {
        tracing::error!(%method, %path, status = response.status().as_u16(), error = %crate::ErrorChain(&**cause), "request failed");
    }
    response
}

/// Serve the API of `service` on `listener` under `edge`'s bounds (the names it answers
/// to, its connections and their timeouts) until `shutdown` resolves, then let requests
/// in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    edge: Edge,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let edge = Arc::new(edge);
    let router = router(service, &edge).layer(middleware::from_fn_with_state(
        Arc::clone(&edge),
        listen::check_host,
    ));
    listen::serve(listener, router, &edge, shutdown).await
}

/// How long a readiness answer is given again without asking the store.
const READY_FOR: Duration = Duration::from_secs(1);

/// `GET /readyz`: 200 once the apps and playbooks are loaded, the writer runs and the
/// store takes a write; 503 before, or when it does not. Unauthenticated, so asked of
/// the store at most once a second (one probe at a time, the others wait for it).
async fn ready(State(server): State<Server>) -> Response {
    let service = &server.service;
    let writable = !service.loading() && service.writing() && {
        let mut last = server.ready.lock().await;
        match *last {
            Some((at, ready)) if at.elapsed() < READY_FOR => ready,
            _ => {
                let ready = service
                    .blocking(|store| store.check_writable())
                    .await
                    .inspect_err(|e| {
                        tracing::warn!(error = %crate::ErrorChain(e), "the store takes no write");
                    })
                    .is_ok();
                *last = Some((std::time::Instant::now(), ready));
                ready
            }
        }
    };
    if writable {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// `GET /metrics`: the server's metrics in Prometheus's text format.
async fn metrics(
    State(server): State<Server>,
    peer: Option<Extension<listen::Peer>>,
    headers: axum::http::HeaderMap,
) -> Response {
    // A loopback peer that a proxy on this machine forwards for is not nearby.
    let forwarded = headers.contains_key("forwarded") || headers.contains_key("x-forwarded-for");
    let nearby =
        !forwarded && peer.is_some_and(|Extension(peer)| peer.0.ip().to_canonical().is_loopback());
    if !(server.metrics_from_loopback && nearby) {
        let token = server.token.0.as_deref();
        let caller = triggers::identify(&server.service, token, &headers).await;
        if !caller.is_some_and(|caller| caller.all_tenants()) {
            return ApiError::Unauthorized(
                "the server's own token (`Authorization: Bearer <token>`): the metrics \
                 count every tenant's executions",
            )
            .into_response();
        }
    }
    let text = server.service.metrics_text();
    (
        [(header::CONTENT_TYPE, service::metrics::CONTENT_TYPE)],
        text,
    )
        .into_response()
}

/// Count each request answered, by its route's pattern (never the path asked for) and
/// status.
async fn count_requests(
    State(service): State<Arc<Service>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |path| path.as_str())
        .to_owned();
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    };
    let response = next.run(request).await;
    service
        .metrics()
        .request(&route, method, response.status().as_u16());
    response
}

/// While the apps and playbooks load, what is not found may be found in a moment: a
/// 404 becomes a 503 that says so.
async fn while_loading(
    State(service): State<Arc<Service>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if response.status() == StatusCode::NOT_FOUND && service.loading() {
        let mut refused = ApiError::Unavailable(
            "wasp is still loading its apps and playbooks; ask again in a moment".to_owned(),
        )
        .into_response();
        refused
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return refused;
    }
    response
}

async fn authorize(State(server): State<Server>, request: Request, next: Next) -> Response {
    let view = View::of(request.uri().path());
    if let Some(refused) = cross_site(request.method(), request.headers()) {
        return refuse(view, ApiError::Forbidden(refused), request).await;
    }
    let token = server.token.0.as_deref();
    // A token first (Huawei's SDK signs with some pair even when it sends a token in
    // `X-Auth-Token`), then a web session's cookie, then a signature.
    let (identity, mut request, signature) =
        match triggers::identify(&server.service, token, request.headers()).await {
            Some(identity) => (identity, request, None),
            None => match session(&server, request.method(), request.headers()).await {
                Some(Ok(identity)) => (identity, request, None),
                Some(Err(refused)) => return refuse(view, refused, request).await,
                None => match signed(&server, request).await {
                    Ok((identity, request, signature)) => (identity, request, Some(signature)),
                    Err((refused, request)) => return refuse(view, refused, request).await,
                },
            },
        };
    let needed = required_role(request.method(), request.uri().path());
    if identity.role < needed {
        let refused = ApiError::Forbidden(format!(
            "{} {} needs the {} role, and the key presented is a {}",
            request.method(),
            request.uri().path(),
            needed.as_str(),
            identity.role.as_str()
        ));
        return refuse(view, refused, request).await;
    }
    // A signed change is made once: one captured on the way cannot be sent again.
    // (Counted only once the key's role allows it, so that no caller fills the record
    // with what it may not do.)
    if let Some(signature) = signature
        && needed > Role::Viewer
        && !server.replays.first(
            identity.subject.as_deref().unwrap_or_default(),
            signature.sent(),
        )
    {
        let refused = ApiError::BadSignature(
            "this signed change was sent before, or its key sent more than the server \
             remembers in a signature's window: sign it again"
                .to_owned(),
        );
        return refuse(view, refused, request).await;
    }
    request.extensions_mut().insert(identity);
    next.run(request).await
}

/// Who the web session a request's `headers` carry (its cookie) is, when one lasts
/// there: a change (`method`) must carry the session's CSRF token in `X-CSRFToken` (a page
/// of another site can send the cookie, not read it).
async fn session(
    server: &Server,
    method: &Method,
    headers: &axum::http::HeaderMap,
) -> Option<Result<Identity, ApiError>> {
    let value = triggers::cookie(headers, triggers::SESSION_COOKIE)?;
    let identity = server
        .service
        .session(server.token.0.as_deref()?, value)
        .await?;
    if !reads(method) {
        let sent = headers.get("x-csrftoken").and_then(|v| v.to_str().ok());
        let kept = triggers::cookie(headers, triggers::CSRF_COOKIE);
        let matches = match (sent, kept) {
            (Some(sent), Some(kept)) => {
                !kept.is_empty() && crate::constant_time_eq(sent.as_bytes(), kept.as_bytes())
            }
            _ => false,
        };
        if !matches {
            return Some(Err(ApiError::Forbidden(
                "a change sent with a session's cookie carries its CSRF token in \
                 `X-CSRFToken`"
                    .to_owned(),
            )));
        }
    }
    Some(Ok(identity))
}

/// Start a web session for a caller that logs in with basic auth and a token as its
/// password (Splunk SOAR's clients: `GET /` with the password, then the session's
/// cookies): an answer that is not a refusal sets its cookie and its CSRF token.
async fn sessions(State(server): State<Server>, request: Request, next: Next) -> Response {
    let password = server
        .token
        .0
        .as_ref()
        .and_then(|_| triggers::basic_password(request.headers()));
    // Only a request that logs in pays for the rest.
    let Some(password) = password else {
        return next.run(request).await;
    };
    let secure = server
        .public_url
        .base(request.headers())
        .starts_with("https:");
    let mut response = next.run(request).await;
    let Some(token) = server.token.0.as_deref() else {
        return response;
    };
    if response.status().as_u16() >= 400 {
        return response;
    }
    let Some(value) = server.service.session_for(token, &password).await else {
        return response;
    };
    let mut csrf = [0u8; 16];
    if getrandom::fill(&mut csrf).is_err() {
        return response;
    }
    let secure = if secure { "; Secure" } else { "" };
    for cookie in [
        format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Strict{secure}",
            triggers::SESSION_COOKIE
        ),
        format!(
            "{}={}; Path=/; SameSite=Strict{secure}",
            triggers::CSRF_COOKIE,
            hex::encode(csrf)
        ),
    ] {
        if let Ok(value) = header::HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// How long a signed request's body may take to arrive.
const SIGNED_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Who signed `request`, when it carries a ThreatConnect or a Huawei signature (see
/// [`signatures`]), and the request again (its body read, when the signature covers
/// it); else why it is refused. Its head is checked before anything else, and the body
/// is read only for a key that exists, within [`signatures::MAX_SIGNED_BODY`] and
/// [`SIGNED_BODY_TIMEOUT`]. Its signature comes back too, for [`Replays`].
async fn signed(
    server: &Server,
    request: Request,
) -> Result<(Identity, Request, signatures::Signature), (ApiError, Request)> {
    let (method, uri, headers) = (request.method(), request.uri(), request.headers());
    let claim = match signatures::claim(method, uri, headers, Utc::now()) {
        None => {
            return Err((
                ApiError::Unauthorized(View::of(uri.path()).schemes()),
                request,
            ));
        }
        Some(Err(why)) => return Err((ApiError::BadSignature(why), request)),
        Some(Ok(claim)) => claim,
    };
    // An unknown key and a wrong signature get the same answer.
    let mismatch = || {
        ApiError::BadSignature(
            "it does not match an API key's signing secret (the access id is the key's id)"
                .to_owned(),
        )
    };
    let Some((identity, secret)) = server.service.signer(claim.key_id()).await else {
        let refused = if !server.service.checks_signatures() {
            ApiError::BadSignature(
                "this server has no signing key (`wasp serve --key-file`), so it checks no \
                 signatures"
                    .to_owned(),
            )
        } else {
            mismatch()
        };
        return Err((refused, request));
    };
    let (request, body) = if claim.covers_body() {
        let (parts, body) = request.into_parts();
        let read = axum::body::to_bytes(body, signatures::MAX_SIGNED_BODY);
        match tokio::time::timeout(SIGNED_BODY_TIMEOUT, read).await {
            Ok(Ok(bytes)) => (
                Request::from_parts(parts, axum::body::Body::from(bytes.clone())),
                bytes,
            ),
            _ => {
                let refused = ApiError::BadRequest(format!(
                    "the body of a signed request must arrive whole, {} KiB at most, within {} s",
                    signatures::MAX_SIGNED_BODY >> 10,
                    SIGNED_BODY_TIMEOUT.as_secs()
                ));
                let request = Request::from_parts(parts, axum::body::Body::empty());
                return Err((refused, request));
            }
        }
    } else {
        (request, Bytes::new())
    };
    let signature = match claim.signature(request.headers(), &body) {
        Ok(signature) => signature,
        Err(why) => return Err((ApiError::BadSignature(why), request)),
    };
    if !signature.verify(&secret) {
        return Err((mismatch(), request));
    }
    Ok((identity, request, signature))
}

/// The signed changes accepted lately (their signatures' SHA-256, oldest first), so that
/// one captured on the way cannot be sent again within its signature's window. Each
/// key has a share, and what is older than the window is forgotten as new ones come.
#[derive(Default)]
struct Replays(std::sync::Mutex<Remembered>);

#[derive(Default)]
struct Remembered {
    order: std::collections::VecDeque<(std::time::Instant, [u8; 32], String)>,
    seen: std::collections::HashSet<[u8; 32]>,
    by_key: HashMap<String, usize>,
}

/// Signed changes remembered at the most, and of one key.
const MAX_REPLAYS: usize = 100_000;
const MAX_REPLAYS_OF_A_KEY: usize = 10_000;

impl Replays {
    /// Whether `signature`, of `key`, is new (and remember it); `false` too when the
    /// key, or everyone, already has as many remembered as the bounds allow.
    fn first(&self, key: &str, signature: &[u8]) -> bool {
        use sha2::Digest as _;
        let hash: [u8; 32] = sha2::Sha256::digest(signature).into();
        let window =
            Duration::from_secs(signatures::HUAWEI_WINDOW_SECS.max(signatures::TC_WINDOW_SECS) * 2);
        let mut remembered = crate::lock(&self.0);
        let Remembered {
            order,
            seen,
            by_key,
        } = &mut *remembered;
        while let Some((at, old, of)) = order.front() {
            if at.elapsed() < window {
                break;
            }
            seen.remove(old);
            if let Some(count) = by_key.get_mut(of.as_str()) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    by_key.remove(of.as_str());
                }
            }
            order.pop_front();
        }
        let of_key = by_key.get(key).copied().unwrap_or(0);
        if seen.contains(&hash) || order.len() >= MAX_REPLAYS || of_key >= MAX_REPLAYS_OF_A_KEY {
            return false;
        }
        seen.insert(hash);
        *by_key.entry(key.to_owned()).or_default() += 1;
        order.push_back((std::time::Instant::now(), hash, key.to_owned()));
        true
    }
}

/// The most of a refused request's body read before the refusal is sent.
const REFUSED_BODY_READ: usize = 64 * 1024;

/// `error` in `view`'s shape, after reading a small body of `request`: answered with
/// its body unread, the connection is closed under a client still sending it, which
/// then sees a broken connection instead of the refusal. A larger body is not read (a
/// caller that may not send it is not waited for): the connection closes.
async fn refuse(view: View, error: ApiError, request: Request) -> Response {
    let _ = axum::body::to_bytes(request.into_body(), REFUSED_BODY_READ).await;
    view.refuse(error)
}

/// The least role a request needs (seed 002): reading is a viewer's (SecMaster's audit
/// log search is a POST that only reads); keys, and changes to assets, are an admin's;
/// every other change (runs, kills, playbooks, replays, SOAR action runs, events) is
/// an operator's.
fn required_role(method: &Method, path: &str) -> Role {
    let reads = reads(method);
    if path.starts_with("/api/v1/keys") || (!reads && path.starts_with("/api/v1/assets")) {
        Role::Admin
    } else if reads || (path.starts_with("/v1/") && path.ends_with("/instances/auditlogs")) {
        Role::Viewer
    } else {
        Role::Operator
    }
}

/// Whose clients a path serves: a refusal is answered in their shape, naming the
/// scheme they send the token with (each scheme is accepted on every path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Native,
    ThreatConnect,
    Soar,
    SecMaster,
}

impl View {
    fn of(path: &str) -> Self {
        if path.starts_with("/api/v3/") {
            View::ThreatConnect
        } else if path.starts_with("/rest/") {
            View::Soar
        } else if path.starts_with("/v1/") && path.contains("/soc/") {
            View::SecMaster
        } else {
            View::Native
        }
    }

    /// The schemes this view's clients send a token with.
    fn schemes(self) -> &'static str {
        match self {
            View::Native => "`Authorization: Bearer <token>`",
            View::ThreatConnect => {
                "`Authorization: TC-Token <token>`, or a `TC <access id>:<signature>` HMAC \
                 signature with `Timestamp` (or `Bearer <token>`)"
            }
            View::Soar => {
                "`ph-auth-token: <token>`, or basic auth with the token as the password (or \
                 `Authorization: Bearer <token>`)"
            }
            View::SecMaster => {
                "`X-Auth-Token: <token>`, or an `SDK-HMAC-SHA256` AK/SK signature (or \
                 `Authorization: Bearer <token>`)"
            }
        }
    }

    /// `error` in this view's shape.
    fn refuse(self, error: ApiError) -> Response {
        match self {
            View::Native => error.into_response(),
            View::ThreatConnect => threatconnect::TcError::from(error).into_response(),
            View::Soar => soar::SoarError::from(error).into_response(),
            View::SecMaster => secmaster::refusal(error).into_response(),
        }
    }
}

/// Why a request that changes something comes from another site's page, if it does:
/// a browser sends such a request (a plain form post carries no token and needs no
/// preflight) to any server, loopback included, so it is refused. Clients that are not
/// browsers send no `Origin`, and the page's own requests are same-origin.
/// Whether `method` only reads (GET, HEAD, OPTIONS): what a page of another site, a
/// session's cookie without its CSRF token, or a signature that covers no body may ask.
pub(super) fn reads(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn cross_site(method: &Method, headers: &axum::http::HeaderMap) -> Option<String> {
    if reads(method) {
        return None;
    }
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if text(header::HeaderName::from_static("sec-fetch-site")) == Some("cross-site") {
        return Some("a request from another site's page is refused".to_owned());
    }
    let origin = text(header::ORIGIN)?;
    let host = text(header::HOST).unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    (origin_host != host).then(|| {
        format!("a request from the page of `{origin}` is refused: only this server's own page may change things here")
    })
}

/// A path no route serves, answered in the shape of the view its prefix names.
async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    let missing = ApiError::NotFound(format!("there is no route {method} {}", uri.path()));
    View::of(uri.path()).refuse(missing)
}

type Params = Query<HashMap<String, String>>;

/// Who a request is from, as [`authorize`] found: every route behind it has one (a
/// server without a token makes every caller the bootstrap admin).
type Caller = axum::Extension<Identity>;

/// Query parameter `name` as a number in `range`, or `default`.
fn number_param(
    params: &HashMap<String, String>,
    name: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ApiError> {
    let Some(text) = params.get(name) else {
        return Ok(default);
    };
    match text.trim().parse::<i64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(ApiError::BadRequest(format!(
            "`{name}` is `{text}`; it must be a whole number from {} to {}",
            range.start(),
            range.end()
        ))),
    }
}

fn flag(params: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match params.get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1" | "") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "`{name}` is `{other}`; it must be true or false"
        ))),
    }
}

async fn list_playbooks(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    let (playbooks, mut stats) = service
        .blocking(move |store| {
            let mut playbooks = store.playbooks()?;
            playbooks.retain(|p| service::visible_to(&caller, p));
            let xids: Vec<String> = playbooks.iter().map(|p| p.xid.clone()).collect();
            Ok((playbooks, triggers::stats_of(store, &xids, &caller.tenant)?))
        })
        .await?;
    let data: Vec<Value> = playbooks
        .into_iter()
        .map(|playbook| {
            let stats = stats.remove(&playbook.xid).unwrap_or_default();
            playbook_view(&service, playbook, stats)
        })
        .collect();
    Ok(Json(json!(answers::Listing {
        count: i64::try_from(data.len()).unwrap_or(i64::MAX),
        data,
    })))
}

async fn get_playbook(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = id.clone();
    let (playbook, stats) = service
        .blocking(move |store| {
            let playbook = store
                .playbook(&key, Some(&caller.tenant))?
                .filter(|p| !p.is_deleted && service::visible_to(&caller, p));
            let stats = match &playbook {
                Some(p) => json!(store.run_stats(&p.xid, &p.tenant_id)?),
                None => Value::Null,
            };
            Ok((playbook, stats))
        })
        .await?;
    let playbook =
        playbook.ok_or_else(|| ApiError::NotFound(format!("there is no playbook `{id}`")))?;
    Ok(Json(playbook_view(&service, playbook, stats)))
}

/// A JSON request body; an empty one is `{}`.
fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))
}

async fn run_playbook(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
    Query(params): Params,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let trigger = json_body(&body)?;
    let log_level = match params.get("log_level") {
        None => None,
        Some(level) => Some(
            level
                .parse::<LogLevel>()
                .map_err(|e| ApiError::BadRequest(format!("`log_level`: {e}")))?,
        ),
    };
    let trigger_type = if flag(&params, "debug")? {
        TriggerType::Debug
    } else {
        TriggerType::Manual
    };
    let log_level = if trigger_type == TriggerType::Debug {
        Some(LogLevel::Trace)
    } else {
        log_level
    };
    // The XID, or the string or numeric id the store knows it by; another tenant's
    // playbook is not found.
    let xid = match service.playbook(&id) {
        Some(playbook) if caller.may_use(&playbook) => id,
        _ => service.visible_playbook(&caller, &id).await?.xid,
    };
    let wait = flag(&params, "wait")?;
    let span = request_span(&headers, "run playbook");
    let started = service
        .run(
            Some(&caller),
            &xid,
            trigger,
            trigger_type,
            log_level,
            Report::when(wait),
        )
        .instrument(span)
        .await?;
    answer_started(started, wait).await
}

/// The headers of a request, for reading its `traceparent`.
struct TraceHeaders<'a>(&'a axum::http::HeaderMap);

impl opentelemetry::propagation::Extractor for TraceHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(axum::http::HeaderName::as_str).collect()
    }
}

/// The span of the work a request starts (`name`): when traces are exported, a child of
/// the request's `traceparent` (W3C Trace Context), so that the caller's trace goes on
/// into the execution.
pub(super) fn request_span(headers: &axum::http::HeaderMap, name: &'static str) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let span = tracing::info_span!("api.request", otel.name = name);
    if !span.is_disabled() {
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&TraceHeaders(headers))
        });
        let _ = span.set_parent(parent);
    }
    span
}

/// The answer to a request that started an execution: at once (202, its ids), or when
/// it has ended (200, its whole record) when the caller waits.
async fn answer_started(started: Started, wait: bool) -> Result<Response, ApiError> {
    if wait {
        let (num, execution) = started
            .done
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::internal(Bug("the execution was not recorded")))?;
        let mut record = serde_json::to_value(&execution).unwrap_or_default();
        record["num"] = json!(num);
        return Ok((StatusCode::OK, Json(record)).into_response());
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(answers::StartedExecution::of(&started)),
    )
        .into_response())
}

/// `GET /api/v1/executions?tql=&offset=&limit=&sort=&count=true`: a page of
/// executions, newest first; `more` says whether another page follows, and `count`
/// (when asked for: it reads every match) how many match in all.
async fn list_executions(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let filter = ExecutionFilter {
        tql: tql_param(&params, EXECUTION_FIELDS)?,
        scope: Some(caller.scope()),
        ..ExecutionFilter::default()
    };
    let window = window(&params, Sort::NewestFirst)?;
    let count = flag(&params, "count")?;
    let page = service
        .blocking(move |store| store.executions(&filter, window, count))
        .await?;
    Ok(Json(json!(answers::ExecutionPage {
        more: page.more,
        data: page.rows,
        count: page.total,
    })))
}

async fn get_execution(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = id.clone();
    let (row, record) = service
        .blocking(move |store| Ok((store.execution(&key)?, store.execution_record(&key)?)))
        .await?;
    let row = row.filter(|row| caller.sees(&row.header.owner()));
    let (Some(row), Some(record)) = (row, record) else {
        return Err(ApiError::NotFound(format!("there is no execution `{id}`")));
    };
    let mut record = match record {
        ExecutionRecord::Ended(record) => record,
        ExecutionRecord::Unfinished { row, steps } => {
            // Still running: what it has done so far.
            let key = row.header.id.clone();
            let nodes = service
                .blocking(move |store| store.node_states(&key))
                .await?;
            let mut record = json!(row);
            record["nodes"] = json!(nodes);
            record["steps"] = Value::Array(steps);
            record
        }
    };
    record["num"] = json!(row.num);
    if let Some(playbook) = service.playbook(&row.header.playbook_id) {
        record["graph"] = graph(&playbook);
    }
    Ok(Json(record))
}

/// A playbook's nodes and edges, for a client to draw.
fn graph(playbook: &Playbook) -> Value {
    use petgraph::visit::EdgeRef;
    let nodes: Vec<Value> = playbook
        .graph
        .node_weights()
        .map(|node| {
            let (kind, app, action) = match &node.kind {
                NodeKind::Trigger => ("trigger", None, None),
                NodeKind::App { app, action } => ("app", Some(app), Some(action)),
                NodeKind::Operator { app, action } => ("operator", Some(app), Some(action)),
                NodeKind::Playbook { id } => ("playbook", Some(id), None),
            };
            json!({"id": node.id, "kind": kind, "app": app, "action": action,
                   "for_each": node.for_each.is_some()})
        })
        .collect();
    let edges: Vec<Value> = playbook
        .graph
        .edge_references()
        .map(|e| {
            json!({
                "from": playbook.graph[e.source()].id,
                "to": playbook.graph[e.target()].id,
                "on": e.weight().to_string(),
            })
        })
        .collect();
    json!({"nodes": nodes, "edges": edges})
}

async fn kill_execution(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
    // Read before answering, though ignored: hyper closes a keep-alive connection
    // whose request body has not arrived when the answer is sent, and a client reusing
    // it then fails ("peer disconnected").
    _body: Bytes,
) -> Result<Response, ApiError> {
    let row = visible_execution(&service, &caller, &id).await?;
    if service.kill(&row.header.id) {
        let body = answers::Killed {
            killed: true,
            execution_id: row.header.id,
        };
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    Err(ApiError::Conflict(format!(
        "execution `{}` is not running: it is {}",
        row.header.id,
        serde_json::to_value(row.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    )))
}

/// The window and order of a list: `offset`, `limit` (1 to 10,000), `sort` asc|desc.
fn window(params: &HashMap<String, String>, default_sort: Sort) -> Result<Window, ApiError> {
    Ok(Window {
        offset: number_param(params, "offset", 0, 0..=i64::MAX)?,
        limit: number_param(params, "limit", 100, 1..=10_000)?,
        sort: match params.get("sort").map(String::as_str) {
            None => default_sort,
            Some("desc") => Sort::NewestFirst,
            Some("asc") => Sort::OldestFirst,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "`sort` is `{other}`; it must be asc or desc"
                )));
            }
        },
    })
}

/// The row of execution `key` (a string or numeric id) when `caller` may see it, or
/// 404: another tenant's (or application's) is not found, as a missing one.
async fn visible_execution(
    service: &Arc<Service>,
    caller: &Identity,
    key: &str,
) -> Result<store::ExecutionRow, ApiError> {
    let lookup = key.to_owned();
    service
        .blocking(move |store| store.execution(&lookup))
        .await?
        .filter(|row| caller.sees(&row.header.owner()))
        .ok_or_else(|| ApiError::NotFound(format!("there is no execution `{key}`")))
}

/// The string id of execution `key` (a string or numeric id) `caller` may see, or 404.
async fn execution_id(
    service: &Arc<Service>,
    caller: &Identity,
    key: &str,
) -> Result<String, ApiError> {
    Ok(visible_execution(service, caller, key).await?.header.id)
}

/// The checked TQL condition of `params["tql"]` over `schema`; `None` (everything) when
/// there is none.
fn tql_param<F: Copy>(
    params: &HashMap<String, String>,
    schema: tql::Schema<F>,
) -> Result<Option<tql::Condition<F>>, ApiError> {
    let text = params.get("tql").map_or("", String::as_str);
    Ok(tql::condition(text, schema, Utc::now())?)
}

/// `GET /api/v1/steps?tql=…`: step runs across executions.
async fn list_steps(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let filter = StepFilter {
        tql: tql_param(&params, STEP_FIELDS)?,
        scope: Some(caller.scope()),
        ..StepFilter::default()
    };
    let window = window(&params, Sort::NewestFirst)?;
    let (rows, total) = service
        .blocking(move |store| store.step_runs(&filter, window))
        .await?;
    Ok(Json(json!(answers::Listing {
        count: total,
        data: rows
    })))
}

/// `GET /api/v1/executions/{id}/steps[?node=…&tql=…]`: every step run of an execution
/// (each iteration and attempt), in the order they ended, with what was captured.
async fn execution_steps(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let id = execution_id(&service, &caller, &id).await?;
    let filter = StepFilter {
        tql: tql_param(&params, STEP_FIELDS)?,
        execution: Some(id),
        node: params.get("node").cloned(),
        scope: None,
    };
    let window = window(&params, Sort::OldestFirst)?;
    let (rows, total) = service
        .blocking(move |store| store.step_runs(&filter, window))
        .await?;
    Ok(Json(json!(answers::Listing {
        count: total,
        data: rows
    })))
}

/// The filter of a log query: TQL over [`LOG_FIELDS`], plus `level` (that level and
/// above), `q` (text the message contains), `node` and `iteration` (of a `for_each`),
/// over the lines of the executions `caller` may see.
fn log_filter(params: &HashMap<String, String>, caller: &Identity) -> Result<LogFilter, ApiError> {
    let tql = tql_param(params, LOG_FIELDS)?;
    let level_at_least = params
        .get("level")
        .map(|level| level.parse::<LogLevel>())
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("`level`: {e}")))?;
    let iteration = params
        .contains_key("iteration")
        .then(|| number_param(params, "iteration", 0, 0..=i64::MAX))
        .transpose()?;
    Ok(LogFilter {
        tql,
        execution: None,
        node: params.get("node").cloned(),
        iteration,
        level_at_least,
        message_contains: params.get("q").filter(|q| !q.is_empty()).cloned(),
        scope: Some(caller.scope()),
    })
}

/// `GET /api/v1/logs?tql=…`: app log lines across executions.
async fn list_logs(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let filter = log_filter(&params, &caller)?;
    let window = window(&params, Sort::NewestFirst)?;
    logs_response(&service, filter, window, &params, "wasp-logs.csv").await
}

/// `GET /api/v1/executions/{id}/logs[?level=&q=&node=&format=csv]`: an execution's app
/// log lines, oldest first, as JSON or as a CSV download.
async fn execution_logs(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let id = execution_id(&service, &caller, &id).await?;
    let filter = LogFilter {
        execution: Some(id.clone()),
        ..log_filter(&params, &caller)?
    };
    let mut window = window(&params, Sort::OldestFirst)?;
    let csv = params.get("format").is_some_and(|f| f == "csv");
    if csv && !params.contains_key("limit") {
        // A download holds every line.
        window.limit = i64::MAX;
    }
    logs_response(&service, filter, window, &params, &format!("{id}-logs.csv")).await
}

async fn logs_response(
    service: &Arc<Service>,
    filter: LogFilter,
    window: Window,
    params: &HashMap<String, String>,
    file: &str,
) -> Result<Response, ApiError> {
    let (rows, total) = service
        .blocking(move |store| store.log_lines(&filter, window))
        .await?;
    match params.get("format").map(String::as_str) {
        None | Some("json") => Ok(Json(answers::Listing {
            count: total,
            data: rows,
        })
        .into_response()),
        Some("csv") => {
            let body = export::logs_csv(&rows).map_err(ApiError::internal)?;
            Ok(export::download("text/csv; charset=utf-8", file, body))
        }
        Some(other) => Err(ApiError::BadRequest(format!(
            "`format` is `{other}`; it must be json or csv"
        ))),
    }
}

/// Every step run of execution `id` (of one node), oldest first.
async fn step_runs_of(
    service: &Arc<Service>,
    id: &str,
    node: Option<&str>,
) -> Result<Vec<StepRunRow>, ApiError> {
    let filter = StepFilter {
        tql: None,
        execution: Some(id.to_owned()),
        node: node.map(str::to_owned),
        scope: None,
    };
    Ok(service
        .blocking(move |store| store.step_runs(&filter, Window::all(Sort::OldestFirst)))
        .await?
        .0)
}

/// `POST /api/v1/playbooks`: a new playbook (YAML or JSON), validated before it is
/// stored.
async fn create_playbook(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let record = service.create_playbook(&caller, body.to_vec()).await?;
    let record = playbook_view(&service, record, json!({}));
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

/// `PUT /api/v1/playbooks/{id}`: replace a playbook's definition; its ids, stamps and
/// run history stay. Executions already running keep the version they started with.
async fn update_playbook(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let record = service.update_playbook(&caller, &id, body.to_vec()).await?;
    Ok(Json(playbook_view(&service, record, json!({}))))
}

/// `DELETE /api/v1/playbooks/{id}`: a soft delete: the record and its executions stay,
/// it no longer runs.
async fn delete_playbook(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let deleted = service.delete_playbook(&caller, &id).await?;
    Ok(Json(serde_json::to_value(deleted).unwrap_or_default()))
}

/// A playbook as the API shows it (seed 003's record): the stored record, its file as
/// `definition`, `steps` the ordered list of its steps, `source_type` where it came
/// from, its run statistics `stats` and its trigger.
fn playbook_view(service: &Service, record: store::PlaybookRecord, stats: Value) -> Value {
    let playbook = service.playbook(&record.xid);
    let source_type = if record.source == "file" {
        "server"
    } else {
        "api"
    };
    let mut view = serde_json::to_value(record).unwrap_or_default();
    view["definition"] = view["steps"].take();
    view["steps"] = playbook.as_deref().map_or_else(|| json!([]), steps);
    view["source_type"] = json!(source_type);
    triggers::enrich(service, &mut view, stats);
    view
}

/// The steps of `playbook` in its file's order: what each runs, and the steps before it
/// with the edge's condition.
fn steps(playbook: &Playbook) -> Value {
    use petgraph::visit::EdgeRef;
    let steps: Vec<Value> = playbook
        .graph
        .node_indices()
        .filter(|index| !matches!(playbook.graph[*index].kind, NodeKind::Trigger))
        .map(|index| {
            let node = &playbook.graph[index];
            let (kind, app, action) = match &node.kind {
                NodeKind::Trigger => ("trigger", None, None),
                NodeKind::App { app, action } => ("app", Some(app), Some(action)),
                NodeKind::Operator { app, action } => ("operator", Some(app), Some(action)),
                NodeKind::Playbook { id } => ("playbook", Some(id), None),
            };
            let after: Vec<Value> = playbook
                .graph
                .edges_directed(index, petgraph::Direction::Incoming)
                .map(|e| json!({"step": playbook.graph[e.source()].id, "on": e.weight().to_string()}))
                .collect();
            json!({
                "id": node.id,
                "type": kind,
                "app": app,
                "action": action,
                "asset": node.asset,
                "for_each": node.for_each.is_some(),
                "after": after,
            })
        })
        .collect();
    Value::Array(steps)
}

/// `POST /api/v1/executions/{id}/steps/{node}/replay[?iteration=&attempt=&wait=true]`:
/// run one step again with the input it logged (ThreatConnect's run profiles), as a new
/// execution whose `replay_of` is the original. A body `{"input": …}` replaces the
/// logged input. The step runs with its node's current settings (app, action, asset,
/// timeout, retry), at the original execution's log level.
async fn replay_step(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path((id, node)): Path<(String, String)>,
    Query(params): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let which = Which {
        iteration: optional_number(&params, "iteration", 0..=i64::MAX)?,
        attempt: optional_number(&params, "attempt", 1..=i64::from(u32::MAX))?,
    };
    let input = serde_json::from_value::<answers::ReplayBody>(json_body(&body)?)
        .map_err(|e| {
            ApiError::BadRequest(format!("the body must be {{\"input\": …}} or empty: {e}"))
        })?
        .input;
    let wait = flag(&params, "wait")?;
    let started = service
        .replay_step(&caller, &id, &node, which, input, Report::when(wait))
        .await?;
    answer_started(started, wait).await
}

/// Query parameter `name` as a number in `range`, when it is given.
fn optional_number<T: TryFrom<i64>>(
    params: &HashMap<String, String>,
    name: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<T>, ApiError> {
    if !params.contains_key(name) {
        return Ok(None);
    }
    let number = number_param(params, name, *range.start(), range)?;
    // In range, so it fits.
    Ok(T::try_from(number).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_change_is_accepted_once_and_each_key_has_a_share() {
        let replays = Replays::default();
        assert!(replays.first("key_a", b"signature 1"));
        assert!(!replays.first("key_a", b"signature 1"), "sent again");
        assert!(
            !replays.first("key_b", b"signature 1"),
            "by another key too"
        );
        assert!(replays.first("key_a", b"signature 2"));
        for n in 1..MAX_REPLAYS_OF_A_KEY {
            assert!(replays.first("key_c", format!("{n}").as_bytes()));
        }
        assert!(replays.first("key_c", b"last of its share"));
        assert!(!replays.first("key_c", b"one more"), "its share is full");
        assert!(replays.first("key_d", b"one more"), "another key's is not");
    }

    /// The status, the body's text and the cause a response carries for `log_failures`.
    async fn answer(response: Response) -> (StatusCode, String, Option<String>) {
        let cause = response
            .extensions()
            .get::<Cause>()
            .map(|Cause(cause)| crate::ErrorChain(&**cause).to_string());
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap(), cause)
    }

    #[tokio::test]
    async fn every_view_hides_a_5xx_cause_from_the_client_and_hands_it_to_the_log_layer() {
        let internal = || ApiError::internal(Bug("the disk is on fire"));
        let responses = [
            internal().into_response(),
            threatconnect::TcError::from(internal()).into_response(),
            soar::SoarError::from(internal()).into_response(),
            secmaster::SecMasterError::from(internal()).into_response(),
        ];
        for response in responses {
            let (status, body, cause) = answer(response).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert!(body.contains("internal error"), "{body}");
            assert!(
                !body.contains("fire"),
                "the cause reached the client: {body}"
            );
            assert_eq!(cause.as_deref(), Some("the disk is on fire"));
        }
        // A client's mistake is told to the client, and is not logged as a failure.
        let (status, body, cause) = answer(
            secmaster::SecMasterError::from(ApiError::BadRequest("`limit` is 0".into()))
                .into_response(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("`limit` is 0"), "{body}");
        assert_eq!(cause, None);
    }

    #[tokio::test]
    async fn a_store_failure_keeps_its_cause_through_the_service_error() {
        let error = ApiError::from(service::Error::Store(store::Error::Missing(
            "the playbooks table".into(),
        )));
        let (status, _, cause) = answer(error.into_response()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            cause.is_some_and(|c| c.starts_with("the store failed: ") && c.contains("playbooks")),
        );
    }
}
