//! The server's edge: which names it answers to, how many connections it holds and for
//! how long, and what a token must be. Each bound guards against one client that would
//! otherwise take the server from everyone else.
//!
//! | bound | default | guards against |
//! |---|---|---|
//! | `Host` a loopback name, an IP literal or an `--allowed-host` name | | DNS rebinding: a page on `evil.example` whose name is made to resolve to 127.0.0.1 talks to the server as a same-origin page |
//! | time to send a request's head, and idle time between requests | 10 s | connections opened and left idle, or trickling their headers, until the server has no file descriptors left |
//! | time to send a request's body | 30 s | a body trickled byte by byte to hold a connection and a handler |
//! | connections at once | 4,096, and never more than three quarters of the descriptors the process may open | running out of file descriptors, after which nothing at all can be accepted |
//! | token | 16 characters, 8 of them different, no spaces | a token a client can guess |
//!
//! At the connection bound the server stops accepting until a connection closes: the
//! kernel holds new ones in the listen queue, and the idle timeout frees the places that
//! idle connections hold, so others are served again within that time.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::ApiError;

/// How long a client may take to send a request's head, and may leave a kept-alive
/// connection idle between requests.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The most connections held at once, when the descriptor limit allows as many.
pub const MAX_CONNECTIONS: usize = 4_096;
/// How long requests in flight (event streams among them) may take to finish once the
/// server is asked to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The shortest token accepted, and how many different characters it must have: a
/// token is the one secret between the network and running playbooks.
pub const MIN_TOKEN_CHARS: usize = 16;
const MIN_TOKEN_DISTINCT: usize = 8;

/// What the server's edge allows.
#[derive(Clone)]
pub struct Edge {
    /// Host names (besides loopback names and IP literals) requests may name in `Host`:
    /// exact names, or `*.domain` for any name under it. Lowercase.
    pub allowed_hosts: Vec<String>,
    /// The most connections held at once.
    pub max_connections: usize,
    /// See [`HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// The token every request must carry as `Authorization: Bearer`, when set.
    pub token: Option<String>,
    /// The address clients reach the server by (`https://wasp.example.com`), for the
    /// links answers carry; without it, from the request (`Host`, and the scheme a
    /// proxy names in `X-Forwarded-Proto` or `Forwarded`).
    pub public_url: Option<String>,
    /// Whether `/metrics` answers a scraper on this machine (a loopback address)
    /// without a token.
    pub metrics_from_loopback: bool,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.debug_struct("Edge")
            .field("allowed_hosts", &self.allowed_hosts)
            .field("max_connections", &self.max_connections)
            .field("header_timeout", &self.header_timeout)
            .field(
                "token",
                &self.token.as_ref().map(|_| crate::trace::REDACTED),
            )
            .finish()
    }
}

/// The address a request's connection came from.
#[derive(Debug, Clone, Copy)]
pub(super) struct Peer(pub std::net::SocketAddr);

impl Default for Edge {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            max_connections: MAX_CONNECTIONS,
            header_timeout: HEADER_TIMEOUT,
            token: None,
            public_url: None,
            metrics_from_loopback: false,
        }
    }
}

impl Edge {
    /// The same edge, allowing `names` in `Host` too. Each is a DNS name or `*.domain`.
    pub fn allowing(mut self, names: &[String]) -> Result<Self, String> {
        for name in names {
            let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
            let bare = name.strip_prefix("*.").unwrap_or(&name);
            let valid = !bare.is_empty()
                && bare.len() <= 253
                && bare
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !valid {
                return Err(format!(
                    "--allowed-host `{name}` is not a host name like `wasp.example.com` or `*.example.com`"
                ));
            }
            self.allowed_hosts.push(name);
        }
        Ok(self)
    }

    /// The same edge, with `url` as the address clients reach it by: `http` or `https`,
    /// a host and an optional port, nothing after (a trailing `/` is dropped).
    pub fn reached_at(mut self, url: Option<&str>) -> Result<Self, String> {
        let Some(url) = url else {
            return Ok(self);
        };
        let url = url.trim().trim_end_matches('/');
        let authority = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        let valid = authority.is_some_and(|a| {
            !a.is_empty()
                && a.len() <= 260
                && a.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']')
                })
        });
        if !valid {
            return Err(format!(
                "--public-url `{url}` is not an address like `https://wasp.example.com` or \
                 `http://10.0.0.5:8080` (a scheme and a host, nothing after)"
            ));
        }
        // Clients reach it by that name, so it is a name it answers to.
        if let Some(name) = authority.and_then(|a| {
            a.rsplit_once(':').map_or(Some(a), |(n, p)| {
                p.bytes().all(|b| b.is_ascii_digit()).then_some(n)
            })
        }) && !name.starts_with('[')
            && name.parse::<IpAddr>().is_err()
        {
            self.allowed_hosts.push(name.to_ascii_lowercase());
        }
        self.public_url = Some(url.to_owned());
        Ok(self)
    }

    /// Whether a request naming `host` (the `Host` header, port included) is for this
    /// server. IP literals always are: DNS rebinding needs a name the attacker controls,
    /// and a request naming an address reached that address.
    fn answers_to(&self, host: &str) -> bool {
        let name = match host.strip_prefix('[') {
            Some(rest) => {
                return rest
                    .split_once(']')
                    .is_some_and(|(ip, _)| ip.parse::<IpAddr>().is_ok());
            }
            None => host.rsplit_once(':').map_or(host, |(name, _)| name),
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name.parse::<IpAddr>().is_ok()
            || name == "localhost"
            || self
                .allowed_hosts
                .iter()
                .any(|allowed| match allowed.strip_prefix("*.") {
                    Some(domain) => name
                        .strip_suffix(domain)
                        .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
                    None => *allowed == name,
                })
    }

    /// The connection bound under the process's descriptor limit `descriptors`: three
    /// quarters of it, leaving the rest to the database, the apps and outbound requests.
    fn connections_under(&self, descriptors: Option<u64>) -> usize {
        let room = descriptors.map_or(usize::MAX, |d| {
            usize::try_from(d / 4 * 3).unwrap_or(usize::MAX)
        });
        self.max_connections.min(room).max(1)
    }
}

/// Why `token` is too weak to guard a server, if it is.
pub fn weak_token(token: &str) -> Option<String> {
    let chars = token.chars().count();
    let mut distinct: Vec<char> = token.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("the token has spaces or control characters".to_owned())
    } else if chars < MIN_TOKEN_CHARS || distinct.len() < MIN_TOKEN_DISTINCT {
        Some(format!(
            "the token has {chars} characters, {} of them different; it needs at least \
             {MIN_TOKEN_CHARS}, {MIN_TOKEN_DISTINCT} of them different (e.g. `openssl rand -hex 16`)",
            distinct.len()
        ))
    } else {
        None
    }
}

/// Whether the server may listen on `addr` with `token`: a token, when given, must not
/// be guessable, and beyond loopback one is required.
pub fn check_exposure(addr: &SocketAddr, token: Option<&str>) -> Result<(), String> {
    if let Some(weak) = token.and_then(weak_token) {
        return Err(format!("refusing a weak token: {weak}"));
    }
    if addr.ip().is_loopback() || token.is_some() {
        Ok(())
    } else {
        Err(format!(
            "refusing to listen on {addr} without a token: anyone who can reach it could run \
             playbooks. Set --token or WASP_API_TOKEN, or listen on 127.0.0.1"
        ))
    }
}

/// Refuse a request whose `Host` names this server by a name it was not told to answer
/// to, on every route, the page and webhooks included. A request without `Host` comes
/// from no browser (browsers always send it) and passes.
pub(super) async fn check_host(
    State(edge): State<Arc<Edge>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    if let Some(host) = host
        && !edge.answers_to(host)
    {
        return ApiError::MisdirectedHost(format!(
            "this server does not answer to the name `{}`; name it by its address, as \
             `localhost`, or start it with `--allowed-host {}`",
            host.escape_debug(),
            host.rsplit_once(':')
                .map_or(host, |(name, _)| name)
                .escape_debug()
        ))
        .into_response();
    }
    next.run(request).await
}

/// Raise the soft limit of open files to the hard one, where the system allows, and
/// return the limit in force.
pub fn raise_descriptor_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = raised;
        }
    }
    limit.current
}

/// Serve `router` on `listener` under `edge`'s bounds until `shutdown` resolves, then
/// let requests in flight finish for up to [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    edge: &Edge,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let bound = edge.connections_under(raise_descriptor_limit());
    let places = Arc::new(Semaphore::new(bound));
    let (stopping, stop) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(edge.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let place = tokio::select! {
            () = &mut shutdown => break,
            place = Arc::clone(&places).acquire_owned() => place.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors despite the bound (another part of the process
                    // holds them), or a connection reset before it was taken: wait a
                    // moment rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(tower_http::add_extension::AddExtension::new(
                router.clone(),
                Peer(peer),
            )),
        );
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _place = place;
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                // Sent once, when the server stops (or its sender is gone).
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    let all = u32::try_from(bound).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, places.acquire_many(all)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_ip_literals_and_allowed_names_are_answered_others_are_not() {
        let edge = Edge::default()
            .allowing(&["wasp.corp.example".to_owned(), "*.soc.example".to_owned()])
            .unwrap();
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "10.1.2.3:80",
            "wasp.corp.example:8080",
            "a.soc.example",
            "b.a.soc.example.",
        ] {
            assert!(edge.answers_to(host), "{host}");
        }
        for host in [
            "evil.example:8080",
            "localhost.evil.example",
            "soc.example",
            "xsoc.example",
            "wasp.corp.example.evil.example",
            "[evil]:80",
            "",
        ] {
            assert!(!edge.answers_to(host), "{host}");
        }
        assert!(Edge::default().allowing(&["http://x".to_owned()]).is_err());
    }

    #[test]
    fn weak_tokens_are_refused_and_say_what_a_token_needs() {
        assert!(weak_token(" ").is_some());
        assert!(weak_token("s").is_some());
        assert!(weak_token("aaaaaaaaaaaaaaaaaaaaaaaa").is_some());
        assert!(weak_token("0123456789abcde").is_some(), "15 characters");
        assert!(weak_token("has a space in it, 0123456").is_some());
        assert_eq!(weak_token("0123456789abcdef"), None);
        assert_eq!(
            check_exposure(&"0.0.0.0:80".parse().unwrap(), Some("x")).unwrap_err(),
            "refusing a weak token: the token has 1 characters, 1 of them different; it needs \
             at least 16, 8 of them different (e.g. `openssl rand -hex 16`)"
        );
        assert!(check_exposure(&"0.0.0.0:80".parse().unwrap(), None).is_err());
        assert!(check_exposure(&"127.0.0.1:80".parse().unwrap(), None).is_ok());
    }

    #[test]
    fn the_connection_bound_leaves_a_quarter_of_the_descriptors() {
        let edge = Edge::default();
        assert_eq!(edge.connections_under(Some(1_024)), 768);
        assert_eq!(edge.connections_under(Some(1 << 20)), MAX_CONNECTIONS);
        assert_eq!(edge.connections_under(None), MAX_CONNECTIONS);
    }
}
