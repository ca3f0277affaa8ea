//! Outbound HTTP: the host side of `wasi:http/outgoing-handler`, allowed only to the
//! hosts the step's asset grants.
//!
//! A request leaves the sandbox only when all of these hold, checked by the host in
//! this order:
//!
//! 1. its host and port match a rule of the asset's `hosts` (an exact name, a
//!    `*.domain` wildcard for subdomains, or an IP literal; a rule without a port allows
//!    only the scheme's default port);
//! 2. the name resolves, within the connect timeout, to at least one address that is
//!    not loopback, private, link-local or otherwise special — unless that address is
//!    itself named by a rule (`127.0.0.1:8080`). The connection goes to the checked
//!    address, so a second lookup cannot swap it (DNS rebinding);
//! 3. it connects (TCP, then TLS for `https` against the webpki roots) within the
//!    connect timeout, and the response's head arrives within the first-byte timeout;
//! 4. the whole exchange ends by the earlier of the request timeout and the step's own
//!    deadline, and the body stays under the response cap (a `Content-Length` over it is
//!    refused before any of the body is read).
//!
//! Every request is recorded for the trace (method, URL without query values, status,
//! duration, bytes); a refusal says why.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Scheme;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::trace::{LogLevel, truncate_utf8};

/// Requests one step run may make: enough for paging through an API, few enough that a
/// hostile app cannot use the host's sockets to flood an allowed service.
pub const MAX_REQUESTS_PER_STEP: usize = 256;

/// Requests of one step run open at once (connecting, waiting, or with a body being
/// read); more wait for one to end. Bounds the sockets a step can hold.
pub const MAX_OPEN_REQUESTS_PER_STEP: usize = 8;

/// Bytes a guest may hand a request body's stream in one write (what `check-write`
/// offers). wasmtime-wasi-http's default is 1 MiB; with its one buffered chunk plus
/// the one being written, an unsent request then held 2 MiB of host memory for a
/// 4-byte handle.
pub(crate) const BODY_CHUNK_BYTES: usize = 64 << 10;

/// Writes a request body buffers before the request is sent or read (the hook's
/// default).
const BODY_BUFFER_CHUNKS: usize = 1;

/// What one request body can hold on the host before it is sent: the channel between
/// the guest's stream and the request holds `BODY_BUFFER_CHUNKS + 1` writes.
pub(crate) const BODY_BUFFER_BYTES: usize = (BODY_BUFFER_CHUNKS + 1) * BODY_CHUNK_BYTES;

/// What the steps bound to one asset may reach over HTTP, and how long and how much
/// they may wait for and read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    rules: Vec<HostRule>,
    /// Resolving the name, connecting and the TLS handshake together.
    pub connect_timeout: Duration,
    /// From the request's end to the response's head.
    pub first_byte_timeout: Duration,
    /// The whole exchange, body included. The step's deadline bounds it too.
    pub request_timeout: Duration,
    /// Bytes of a response body.
    pub max_response_bytes: u64,
}

impl Default for Egress {
    /// Nothing allowed, default timeouts and cap.
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 16 << 20,
        }
    }
}

impl Egress {
    /// The default limits, allowing the hosts of `rules` (see [`HostRule::parse`]).
    pub fn allowing<S: AsRef<str>>(rules: impl IntoIterator<Item = S>) -> Result<Self, String> {
        let rules = rules
            .into_iter()
            .map(|rule| HostRule::parse(rule.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rules,
            ..Self::default()
        })
    }

    /// The rules, as written.
    pub fn hosts(&self) -> Vec<String> {
        self.rules.iter().map(ToString::to_string).collect()
    }

    /// Whether a request to `host` (as in a URL: an IPv6 literal in brackets) on `port`
    /// is allowed, for a scheme whose default port is `default_port`.
    pub fn allows(&self, host: &str, port: u16, default_port: u16) -> bool {
        let host = Host::of(host);
        self.rules
            .iter()
            .any(|rule| rule.port.unwrap_or(default_port) == port && rule.host.matches(&host))
    }

    /// Whether the special address `ip` is named, on `port`, by a rule that is that IP
    /// literal, and so may be reached. (Another rule's port does not carry over: with
    /// `10.0.0.5:8080` and `*.example.com`, a name resolving to 10.0.0.5 reaches port
    /// 8080 only.)
    fn names(&self, ip: IpAddr, port: u16, default_port: u16) -> bool {
        let ip = canonical(ip);
        self.rules.iter().any(|rule| {
            matches!(rule.host, Host::Ip(named) if named == ip)
                && rule.port.unwrap_or(default_port) == port
        })
    }
}

/// One allowed destination: a host pattern and an optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostRule {
    host: Host,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// A host name, lower case, without a trailing dot.
    Name(String),
    /// `*.suffix`: any name ending in `.suffix`.
    Subdomains(String),
    /// An IP address.
    Ip(IpAddr),
}

impl Host {
    /// A URL's host, normalised for comparison.
    fn of(host: &str) -> Self {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match bare.parse::<IpAddr>() {
            Ok(ip) => Self::Ip(canonical(ip)),
            Err(_) => Self::Name(bare.trim_end_matches('.').to_ascii_lowercase()),
        }
    }

    fn matches(&self, host: &Host) -> bool {
        match (self, host) {
            (Self::Name(rule), Self::Name(name)) => rule == name,
            // `suffix` starts with its dot: `a.example.com` ends with `.example.com`,
            // `example.com` and `evilexample.com` do not.
            (Self::Subdomains(suffix), Self::Name(name)) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| !head.is_empty()),
            (Self::Ip(rule), Self::Ip(ip)) => rule == ip,
            _ => false,
        }
    }
}

impl HostRule {
    /// Parse `api.example.com`, `api.example.com:8443`, `*.example.com`,
    /// `10.0.0.5:8080` or `[::1]:8080`.
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let fail = |why: &str| Err(format!("host `{text}`: {why}"));
        if text.contains("://") || text.contains('/') {
            return fail("give a host and optional port, not a URL");
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let Some((ip, after)) = rest.split_once(']') else {
                return fail("an IPv6 address in brackets needs its closing `]`");
            };
            match after.strip_prefix(':') {
                Some(port) => (format!("[{ip}]"), Some(port)),
                None if after.is_empty() => (format!("[{ip}]"), None),
                None => return fail("expected `:port` after `]`"),
            }
        } else if text.parse::<Ipv6Addr>().is_ok() {
            (text.to_owned(), None)
        } else {
            match text.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (text.to_owned(), None),
            }
        };
        let port = match port {
            None => None,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => Some(port),
                _ => return fail("the port must be a number from 1 to 65535"),
            },
        };
        let valid_name = |name: &str| {
            !name.is_empty()
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
        };
        let host = if host == "*" {
            return fail(
                "`*` would allow every host; name the hosts, or `*.domain` for subdomains",
            );
        } else if let Some(suffix) = host.strip_prefix("*.") {
            let suffix = suffix.trim_end_matches('.').to_ascii_lowercase();
            if !valid_name(&suffix) || !suffix.contains('.') {
                return fail("a wildcard covers the subdomains of a domain, like `*.example.com`");
            }
            Host::Subdomains(format!(".{suffix}"))
        } else {
            match Host::of(&host) {
                Host::Name(name) if !valid_name(&name) => {
                    return fail("not a valid host name or IP address");
                }
                host => host,
            }
        };
        Ok(Self { host, port })
    }
}

impl std::fmt::Display for HostRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            Host::Name(name) => write!(f, "{name}")?,
            Host::Subdomains(suffix) => write!(f, "*{suffix}")?,
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}")?,
            Host::Ip(IpAddr::V6(ip)) if self.port.is_some() => write!(f, "[{ip}]")?,
            Host::Ip(IpAddr::V6(ip)) => write!(f, "{ip}")?,
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The kind of a special-purpose address that a request may reach only when a rule
/// names it: anything that is not a public unicast address.
fn special(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if segments[0] & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if segments[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if segments[0] & 0xffc0 == 0xfec0 {
                Some("site-local")
            } else if segments[0..6] == [0x64, 0xff9b, 0, 0, 0, 0] || segments[0..6] == [0; 6] {
                // NAT64 and the old IPv4-compatible form: the IPv4 address they carry
                // decides.
                let [a, b] = segments[6].to_be_bytes();
                let [c, d] = segments[7].to_be_bytes();
                special_v4(Ipv4Addr::new(a, b, c, d))
            } else if segments[0..2] == [0x64, 0xff9b] {
                Some("local-use NAT64")
            } else if segments[0] == 0x2002 {
                // 6to4: the IPv4 address it carries decides.
                let [a, b] = segments[1].to_be_bytes();
                let [c, d] = segments[2].to_be_bytes();
                special_v4(Ipv4Addr::new(a, b, c, d))
            } else if segments[0] == 0x2001 && segments[1] == 0x0db8 {
                Some("documentation")
            } else {
                None
            }
        }
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local (cloud metadata lives here)")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if a == 100 && b & 0xc0 == 64 {
        Some("shared (CGNAT)")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast or reserved")
    } else if ip.is_documentation()
        || (a == 198 && (b == 18 || b == 19))
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
    {
        Some("documentation or benchmarking")
    } else {
        None
    }
}

/// One request a step made, as the trace records it.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    ts: String,
    method: String,
    url: String,
    started: Instant,
    status: Option<u16>,
    bytes: u64,
    duration: Option<Duration>,
    /// Why the host refused it or why it failed.
    problem: Option<String>,
    pub(crate) refused: bool,
}

impl Record {
    /// The log line: DEBUG for a request that went out, WARN for a refusal.
    pub(crate) fn line(&self) -> (String, LogLevel, String, Vec<(String, String)>) {
        let duration = self.duration.unwrap_or_else(|| self.started.elapsed());
        let ms = duration.as_secs_f64() * 1000.0;
        let mut fields = vec![
            ("method".to_owned(), self.method.clone()),
            ("url".to_owned(), self.url.clone()),
        ];
        if let Some(status) = self.status {
            fields.push(("status".to_owned(), status.to_string()));
        }
        fields.push(("duration_ms".to_owned(), format!("{ms:.1}")));
        fields.push(("bytes".to_owned(), self.bytes.to_string()));
        let (level, message) = match (&self.problem, self.refused) {
            (Some(why), true) => (
                LogLevel::Warn,
                format!("the host refused {} {}: {why}", self.method, self.url),
            ),
            (Some(why), false) => (
                LogLevel::Debug,
                format!(
                    "{} {} failed after {ms:.1} ms ({} B read): {why}",
                    self.method, self.url, self.bytes
                ),
            ),
            (None, _) => (
                LogLevel::Debug,
                match self.status {
                    Some(status) if self.duration.is_some() => format!(
                        "{} {} → {status} in {ms:.1} ms, {} B",
                        self.method, self.url, self.bytes
                    ),
                    Some(status) => format!(
                        "{} {} → {status}; {} B of the body read in {ms:.1} ms",
                        self.method, self.url, self.bytes
                    ),
                    None => format!(
                        "{} {} had no answer after {ms:.1} ms",
                        self.method, self.url
                    ),
                },
            ),
        };
        if let Some(why) = &self.problem {
            fields.push(("error".to_owned(), why.clone()));
        }
        (self.ts.clone(), level, message, fields)
    }
}

/// The requests of one step run, shared between the store's hooks and the tasks that
/// carry the requests.
#[derive(Debug, Clone, Default)]
pub(crate) struct Records(Arc<Mutex<Requests>>);

#[derive(Debug, Default)]
struct Requests {
    made: Vec<Record>,
    /// Requests refused past [`MAX_REQUESTS_PER_STEP`], counted, not recorded.
    over_limit: u64,
}

impl Records {
    /// Record a new request; `None` (and counted) past the step's limit.
    fn start(&self, method: &str, url: String) -> Option<usize> {
        let mut requests = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if requests.made.len() >= MAX_REQUESTS_PER_STEP {
            requests.over_limit += 1;
            return None;
        }
        let records = &mut requests.made;
        records.push(Record {
            ts: humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
            method: recorded_head(method.to_owned(), MAX_RECORDED_METHOD_BYTES),
            url,
            started: Instant::now(),
            status: None,
            bytes: 0,
            duration: None,
            problem: None,
            refused: false,
        });
        Some(records.len() - 1)
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut Record)) {
        let mut requests = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(record) = requests.made.get_mut(index) {
            change(record);
        }
    }

    /// Mark request `index` refused for `why`, and return the error for the guest.
    fn refuse(&self, index: usize, why: String, error: Error) -> Error {
        self.update(index, |record| {
            record.problem = Some(why);
            record.refused = true;
            record.duration = Some(record.started.elapsed());
        });
        error
    }

    fn fail(&self, index: usize, why: String, error: Error) -> Error {
        self.update(index, |record| {
            if record.problem.is_none() {
                record.problem = Some(why);
            }
            record
                .duration
                .get_or_insert_with(|| record.started.elapsed());
        });
        error
    }

    /// Every request so far, and how many more were refused past the step's limit.
    pub(crate) fn take(&self) -> (Vec<Record>, u64) {
        let mut requests = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (std::mem::take(&mut requests.made), requests.over_limit)
    }
}

/// The `wasi:http` hooks of one step run: its asset's grant, its deadline, and where
/// its requests are recorded.
pub(crate) struct Hooks {
    egress: Arc<Egress>,
    asset: Option<String>,
    deadline: Instant,
    pub(crate) records: Records,
    open: Arc<tokio::sync::Semaphore>,
}

impl Hooks {
    /// The hooks of a step run that must end by `deadline`.
    pub(crate) fn new(egress: Arc<Egress>, asset: Option<String>, deadline: Instant) -> Self {
        Self {
            egress,
            asset,
            deadline,
            records: Records::default(),
            open: Arc::new(tokio::sync::Semaphore::new(MAX_OPEN_REQUESTS_PER_STEP)),
        }
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_error: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let request_to = Request {
            egress: Arc::clone(&self.egress),
            asset: self.asset.clone(),
            deadline: self.deadline,
            records: self.records.clone(),
            open: Arc::clone(&self.open),
        };
        // When traces are exported: a span of the request (its method and the server
        // it names, never its path or query, which can hold secrets), a child of the
        // step's, and the request carries it to the server as `traceparent`.
        let span = tracing::info_span!(
            "host.http",
            otel.name = "wasp.http",
            http.request.method = %request.method(),
            server.address = request.uri().host().unwrap_or_default(),
        );
        if span.is_disabled() {
            return Box::new(request_to.send(request, options));
        }
        carry_trace(&span, request.headers_mut());
        Box::new(tracing::Instrument::instrument(
            request_to.send(request, options),
            span,
        ))
    }

    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        BODY_BUFFER_CHUNKS
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_CHUNK_BYTES
    }
}

/// Put `span`'s trace context into `headers` (`traceparent`), replacing any the app
/// set; any `tracestate` is left as the app set it.
fn carry_trace(span: &tracing::Span, headers: &mut http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    struct Headers<'a>(&'a mut http::HeaderMap);
    impl opentelemetry::propagation::Injector for Headers<'_> {
        fn set(&mut self, key: &str, value: String) {
            // The trace only: a caller's `tracestate` is not the business of the hosts a
            // step calls.
            if key != "traceparent" {
                return;
            }
            if let (Ok(name), Ok(value)) = (
                http::header::HeaderName::from_bytes(key.as_bytes()),
                http::header::HeaderValue::from_str(&value),
            ) {
                self.0.insert(name, value);
            }
        }
    }
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut Headers(headers));
    });
}

/// One request on its way out.
struct Request {
    egress: Arc<Egress>,
    asset: Option<String>,
    deadline: Instant,
    records: Records,
    open: Arc<tokio::sync::Semaphore>,
}

/// Bytes of a request's URL, and of its method, kept in its record: the records are
/// the host's own log lines, kept past the app's log caps, so the app must not choose
/// their size.
const MAX_RECORDED_URL_BYTES: usize = 2048;
const MAX_RECORDED_METHOD_BYTES: usize = 32;

/// `text` cut to `max` bytes, with `…` when it was cut.
fn recorded_head(mut text: String, max: usize) -> String {
    if truncate_utf8(&mut text, max) {
        text.push('…');
    }
    text
}

/// The URL as recorded: no user information, query parameter names without values,
/// at most [`MAX_RECORDED_URL_BYTES`].
fn recorded_url(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("https");
    let host = uri.host().unwrap_or("");
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    let mut url = format!("{scheme}://{host}{port}{}", uri.path());
    if let Some(query) = uri.query() {
        let names: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}=…"),
                None => pair.to_owned(),
            })
            .collect();
        url.push('?');
        url.push_str(&names.join("&"));
    }
    recorded_head(url, MAX_RECORDED_URL_BYTES)
}

/// The request line's target: the URL's path and query, without the host (which
/// travels in `Host`).
fn origin_form(uri: &http::Uri) -> http::Uri {
    uri.path_and_query().map_or_else(
        || http::Uri::from_static("/"),
        |p| {
            http::Uri::from_maybe_shared(Bytes::copy_from_slice(p.as_str().as_bytes()))
                .unwrap_or_else(|_| http::Uri::from_static("/"))
        },
    )
}

static TLS: LazyLock<Arc<rustls::ClientConfig>> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
});

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A client connection of one request, and the task that drives it.
type Sender = hyper::client::conn::http1::SendRequest<WasiBody>;
type Connection = hyper::client::conn::http1::Connection<TokioIo<Box<dyn Stream>>, WasiBody>;

/// Where an admitted request goes.
struct Destination {
    /// As in the URL (an IPv6 literal in brackets).
    host: String,
    port: u16,
    /// The scheme's default port.
    default_port: u16,
    https: bool,
}

/// The time limits of one request: the asset's, shortened by the guest's options, and
/// when the whole exchange must end.
struct Deadlines {
    connect_timeout: Duration,
    first_byte_timeout: Duration,
    /// The earlier of the request timeout and the step's own deadline.
    deadline: tokio::time::Instant,
}

impl Request {
    /// Send `request` where the asset allows, in the phases the module docs list:
    /// admit it, wait for an open slot, resolve, connect, secure, handshake, wait for
    /// the response's head, then hand back a body read under the cap and the deadline.
    async fn send(
        self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<
        (
            http::Response<WasiBody>,
            Box<dyn Future<Output = Result<(), Error>> + Send>,
        ),
        Error,
    > {
        let uri = request.uri().clone();
        let head = request.method() == http::Method::HEAD;
        let (index, to) = self.admit(request.method(), &uri)?;
        let limits = self.deadlines(options);
        let deadline = limits.deadline;
        // Held until the body is read or dropped.
        let Ok(Ok(permit)) =
            tokio::time::timeout_at(deadline, Arc::clone(&self.open).acquire_owned()).await
        else {
            return Err(self.timed_out(
                index,
                "waiting for another request of the step to end",
                self.egress.request_timeout,
            ));
        };
        let connect_by = (tokio::time::Instant::now() + limits.connect_timeout).min(deadline);
        let connecting = (connect_by, limits.connect_timeout);
        let addresses = self
            .resolve(index, (&to.host, to.port, to.default_port), connect_by)
            .await?;
        let stream = self.connect(index, &addresses, connecting).await?;
        let stream = if to.https {
            self.secure(index, &to.host, stream, connecting).await?
        } else {
            stream
        };
        let (sender, connection) = self.handshake(index, stream, connecting).await?;
        // The request line carries the path only; the host travels in `Host`.
        *request.uri_mut() = origin_form(&uri);
        let mut connection = Box::pin(connection);
        let (response, connection_done) = self
            .first_byte(index, sender, &mut connection, request, &limits)
            .await?;
        let response = self.respond(index, response, head, permit, deadline)?;
        let io = async move {
            if connection_done {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, connection).await {
                Ok(result) => result.map_err(Error::from),
                Err(_) => Err(Error::HttpResponseTimeout),
            }
        };
        Ok((response, Box::new(io)))
    }

    /// The admission phase: record the request (or refuse it past the step's count),
    /// then refuse it unless its URL carries no credentials and the asset allows its
    /// host and port.
    fn admit(&self, method: &http::Method, uri: &http::Uri) -> Result<(usize, Destination), Error> {
        let Some(index) = self.records.start(method.as_str(), recorded_url(uri)) else {
            return Err(Error::ConnectionLimitReached);
        };
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            // The guest's authority becomes the `Host` header as written: credentials
            // there would reach the server (and confuse front-ends routing by Host).
            let why = "the URL carries credentials (`user@host`); send them in a header".to_owned();
            return Err(self
                .records
                .refuse(index, why, Error::HttpRequestUriInvalid));
        }
        let https = uri.scheme() == Some(&Scheme::HTTPS);
        let default_port = if https { 443 } else { 80 };
        let host = uri.host().unwrap_or("").to_owned();
        let port = uri.port_u16().unwrap_or(default_port);
        if !self.egress.allows(&host, port, default_port) {
            let why = format!("{host}:{port} is not an allowed host; {}", self.grant());
            return Err(self.records.refuse(index, why, Error::HttpRequestDenied));
        }
        let to = Destination {
            host,
            port,
            default_port,
            https,
        };
        Ok((index, to))
    }

    /// What the step may reach, for a refusal.
    fn grant(&self) -> String {
        match (&self.asset, self.egress.rules.is_empty()) {
            (None, true) => "the step binds no asset, so it may not reach any host".to_owned(),
            (None, false) => {
                format!("the step may reach only {}", self.egress.hosts().join(", "))
            }
            (Some(asset), true) => format!("asset `{asset}` allows no hosts"),
            (Some(asset), false) => format!(
                "asset `{asset}` allows only {}",
                self.egress.hosts().join(", ")
            ),
        }
    }

    /// The request's time limits, from now.
    fn deadlines(&self, options: Option<RequestOptions>) -> Deadlines {
        let options = options.unwrap_or_default();
        let shortest =
            |ours: Duration, theirs: Option<Duration>| theirs.map_or(ours, |t| t.min(ours));
        Deadlines {
            connect_timeout: shortest(self.egress.connect_timeout, options.connect_timeout),
            first_byte_timeout: shortest(
                self.egress.first_byte_timeout,
                options.first_byte_timeout,
            ),
            deadline: tokio::time::Instant::from_std(
                (Instant::now() + self.egress.request_timeout).min(self.deadline),
            ),
        }
    }

    /// TLS over `stream` to `host`, against the webpki roots, within the connect
    /// timeout.
    async fn secure(
        &self,
        index: usize,
        host: &str,
        stream: Box<dyn Stream>,
        (by, timeout): (tokio::time::Instant, Duration),
    ) -> Result<Box<dyn Stream>, Error> {
        let name = match Host::of(host) {
            Host::Ip(ip) => rustls::pki_types::ServerName::IpAddress(ip.into()),
            _ => rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
                self.records.fail(
                    index,
                    format!("bad TLS name: {e}"),
                    Error::HttpRequestUriInvalid,
                )
            })?,
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&TLS));
        match tokio::time::timeout_at(by, connector.connect(name, stream)).await {
            Ok(Ok(tls)) => Ok(Box::new(tls)),
            Ok(Err(e)) => Err(self.records.fail(
                index,
                format!("TLS handshake failed: {e}"),
                Error::TlsCertificateError,
            )),
            Err(_) => Err(self.timed_out(index, "the TLS handshake", timeout)),
        }
    }

    /// The HTTP/1 handshake over `stream`, within the connect timeout.
    async fn handshake(
        &self,
        index: usize,
        stream: Box<dyn Stream>,
        (by, timeout): (tokio::time::Instant, Duration),
    ) -> Result<(Sender, Connection), Error> {
        match tokio::time::timeout_at(
            by,
            hyper::client::conn::http1::handshake(TokioIo::new(stream)),
        )
        .await
        {
            Ok(Ok(pair)) => Ok(pair),
            Ok(Err(e)) => Err(self.records.fail(index, e.to_string(), Error::from(e))),
            Err(_) => Err(self.timed_out(index, "the HTTP handshake", timeout)),
        }
    }

    /// Send `request` and wait for the response's head within the first-byte timeout,
    /// driving the connection meanwhile. Also says whether the connection ended.
    async fn first_byte(
        &self,
        index: usize,
        mut sender: Sender,
        connection: &mut Pin<Box<Connection>>,
        request: http::Request<WasiBody>,
        limits: &Deadlines,
    ) -> Result<(http::Response<hyper::body::Incoming>, bool), Error> {
        let mut connection_done = false;
        let respond_by =
            (tokio::time::Instant::now() + limits.first_byte_timeout).min(limits.deadline);
        let sent = sender.send_request(request);
        tokio::pin!(sent);
        let response = loop {
            tokio::select! {
                biased;
                response = &mut sent => break response,
                ended = &mut *connection, if !connection_done => {
                    connection_done = true;
                    if let Err(e) = ended {
                        return Err(self.records.fail(index, e.to_string(), Error::from(e)));
                    }
                }
                () = tokio::time::sleep_until(respond_by) => {
                    return Err(self.timed_out(index, "the response's first byte", limits.first_byte_timeout));
                }
            }
        };
        let response =
            response.map_err(|e| self.records.fail(index, e.to_string(), Error::from(e)))?;
        Ok((response, connection_done))
    }

    /// The response phase: record its status, refuse a body declared over the cap
    /// (but where there is none), and read the body through [`Capped`], which holds
    /// the open slot `permit` until it ends.
    fn respond(
        &self,
        index: usize,
        response: http::Response<hyper::body::Incoming>,
        head: bool,
        permit: tokio::sync::OwnedSemaphorePermit,
        deadline: tokio::time::Instant,
    ) -> Result<http::Response<WasiBody>, Error> {
        let status = response.status().as_u16();
        self.records
            .update(index, |record| record.status = Some(status));
        let cap = self.egress.max_response_bytes;
        let declared = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        // A HEAD answer, a 204 and a 304 carry no body whatever their length says.
        let bodiless = head || status == 204 || status == 304;
        if let Some(length) = declared.filter(|&length| length > cap && !bodiless) {
            return Err(self.records.fail(
                index,
                format!(
                    "the response declares {length} bytes, over the {cap}-byte cap of the asset"
                ),
                Error::HttpResponseBodySize(Some(length)),
            ));
        }
        let records = self.records.clone();
        Ok(response.map(|incoming| {
            Capped {
                incoming,
                cap,
                read: 0,
                deadline: Box::pin(tokio::time::sleep_until(deadline)),
                records,
                index,
                ended: false,
                _permit: permit,
            }
            .boxed_unsync()
        }))
    }

    async fn resolve(
        &self,
        index: usize,
        (host, port, default_port): (&str, u16, u16),
        by: tokio::time::Instant,
    ) -> Result<Vec<SocketAddr>, Error> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let found: Vec<SocketAddr> =
            match tokio::time::timeout_at(by, tokio::net::lookup_host((bare, port))).await {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(e)) => {
                    return Err(self.records.fail(
                        index,
                        format!("cannot resolve {host}: {e}"),
                        Error::DnsError {
                            rcode: Some(e.to_string()),
                            info_code: None,
                        },
                    ));
                }
                Err(_) => {
                    return Err(self.records.fail(
                        index,
                        format!("resolving {host} took longer than the connect timeout"),
                        Error::DnsTimeout,
                    ));
                }
            };
        let mut refused = Vec::new();
        let allowed: Vec<SocketAddr> = found
            .into_iter()
            .filter(|address| match special(address.ip()) {
                Some(kind) if !self.egress.names(address.ip(), port, default_port) => {
                    refused.push(format!("{} ({kind})", address.ip()));
                    false
                }
                _ => true,
            })
            .collect();
        if allowed.is_empty() {
            let why = format!(
                "{host} resolves only to special addresses: {}; a request reaches such an address only when the asset's hosts name it",
                refused.join(", ")
            );
            return Err(self
                .records
                .refuse(index, why, Error::DestinationIpProhibited));
        }
        Ok(allowed)
    }

    async fn connect(
        &self,
        index: usize,
        addresses: &[SocketAddr],
        (by, timeout): (tokio::time::Instant, Duration),
    ) -> Result<Box<dyn Stream>, Error> {
        let mut last = String::new();
        for address in addresses {
            match tokio::time::timeout_at(by, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => {
                    // Small requests and answers: do not wait to coalesce them.
                    let _ = stream.set_nodelay(true);
                    return Ok(Box::new(stream));
                }
                Ok(Err(e)) => last = format!("cannot connect to {address}: {e}"),
                Err(_) => {
                    return Err(self.timed_out(index, "connecting", timeout));
                }
            }
        }
        Err(self.records.fail(index, last, Error::ConnectionRefused))
    }

    fn timed_out(&self, index: usize, what: &str, limit: Duration) -> Error {
        let why = if Instant::now() + Duration::from_millis(1) >= self.deadline {
            format!("{what} ran into the step's deadline")
        } else {
            format!(
                "{what} took longer than {}",
                humantime::format_duration(limit)
            )
        };
        self.records.fail(index, why, Error::ConnectionTimeout)
    }
}

/// A response body that stops at the cap and at the deadline, counting what it reads.
struct Capped {
    incoming: hyper::body::Incoming,
    cap: u64,
    read: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
    records: Records,
    index: usize,
    ended: bool,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Body for Capped {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let size = frame.data_ref().map_or(0, |data| data.len() as u64);
                this.read += size;
                let read = this.read;
                if read > this.cap {
                    this.ended = true;
                    let why = format!(
                        "the response passed the {}-byte cap of the asset; the rest was not read",
                        this.cap
                    );
                    let error = Error::HttpResponseBodySize(Some(read));
                    return Poll::Ready(Some(Err(this.records.fail(this.index, why, error))));
                }
                this.records
                    .update(this.index, |record| record.bytes = read);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.ended = true;
                Poll::Ready(Some(Err(this.records.fail(
                    this.index,
                    e.to_string(),
                    Error::from(e),
                ))))
            }
            Poll::Ready(None) => {
                this.ended = true;
                this.records.update(this.index, |record| {
                    record.duration = Some(record.started.elapsed());
                });
                Poll::Ready(None)
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.ended = true;
                    let why = "the body did not end by the request's deadline".to_owned();
                    let error = Error::HttpResponseTimeout;
                    Poll::Ready(Some(Err(this.records.fail(this.index, why, error))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_host_and_port() {
        let egress = Egress::allowing([
            "api.example.com",
            "intel.example.com:8443",
            "*.vt.example",
            "127.0.0.1:8080",
            "[::1]:9000",
        ])
        .unwrap();
        assert!(egress.allows("api.example.com", 443, 443));
        assert!(egress.allows("API.Example.com.", 80, 80));
        assert!(
            !egress.allows("api.example.com", 8080, 443),
            "no port: the scheme's only"
        );
        assert!(egress.allows("intel.example.com", 8443, 443));
        assert!(!egress.allows("intel.example.com", 443, 443));
        assert!(egress.allows("a.vt.example", 443, 443));
        assert!(egress.allows("a.b.vt.example", 443, 443));
        assert!(
            !egress.allows("vt.example", 443, 443),
            "a wildcard is for subdomains"
        );
        assert!(!egress.allows("evilvt.example", 443, 443));
        assert!(!egress.allows("api.example.com.evil.test", 443, 443));
        assert!(egress.allows("127.0.0.1", 8080, 80));
        assert!(!egress.allows("127.0.0.1", 8081, 80));
        assert!(egress.allows("[::1]", 9000, 80));
        assert!(!egress.allows("localhost", 8080, 80));
        assert_eq!(
            egress.hosts(),
            [
                "api.example.com",
                "intel.example.com:8443",
                "*.vt.example",
                "127.0.0.1:8080",
                "[::1]:9000"
            ]
        );
        assert!(!Egress::default().allows("api.example.com", 443, 443));
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for (rule, why) in [
            ("https://api.example.com", "not a URL"),
            ("*", "every host"),
            ("*.com", "subdomains of a domain"),
            ("api.example.com:99999", "port must be"),
            ("api.example.com:0", "port must be"),
            ("bad host", "not a valid host"),
            ("[::1", "closing"),
        ] {
            let error = Egress::allowing([rule]).unwrap_err();
            assert!(error.contains(why), "{rule}: {error}");
            assert!(error.contains(rule.trim()), "{rule}: {error}");
        }
    }

    #[test]
    fn special_addresses_are_classified() {
        for special_ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "fec0::1",
            "::127.0.0.1",
            "192.0.0.8",
        ] {
            assert!(
                special(special_ip.parse().unwrap()).is_some(),
                "{special_ip}"
            );
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert_eq!(special(public.parse().unwrap()), None, "{public}");
        }
        let egress = Egress::allowing(["127.0.0.1:8080", "*.example.com", "10.0.0.5"]).unwrap();
        assert!(egress.names("127.0.0.1".parse().unwrap(), 8080, 80));
        assert!(egress.names("::ffff:127.0.0.1".parse().unwrap(), 8080, 80));
        assert!(!egress.names("127.0.0.2".parse().unwrap(), 8080, 80));
        // A name resolving to a named address reaches it on that rule's port only.
        assert!(!egress.names("127.0.0.1".parse().unwrap(), 443, 443));
        assert!(egress.names("10.0.0.5".parse().unwrap(), 443, 443));
        assert!(!egress.names("10.0.0.5".parse().unwrap(), 8443, 443));
    }

    #[test]
    fn requests_past_the_limit_are_counted_not_recorded() {
        let records = Records::default();
        for i in 0..MAX_REQUESTS_PER_STEP {
            assert_eq!(records.start("GET", "http://a/".into()), Some(i));
        }
        assert_eq!(records.start("GET", "http://a/".into()), None);
        assert_eq!(records.start("GET", "http://a/".into()), None);
        let (made, over_limit) = records.take();
        assert_eq!((made.len(), over_limit), (MAX_REQUESTS_PER_STEP, 2));
    }

    #[test]
    fn recorded_urls_keep_no_query_values_or_credentials() {
        let uri: http::Uri =
            "https://api.example.com/v2/check?ipAddress=1.2.3.4&key=s3cret&verbose"
                .parse()
                .unwrap();
        assert_eq!(
            recorded_url(&uri),
            "https://api.example.com/v2/check?ipAddress=…&key=…&verbose"
        );
        let uri: http::Uri = "http://user:pw@10.0.0.1:8080/x".parse().unwrap();
        assert_eq!(recorded_url(&uri), "http://10.0.0.1:8080/x");
        let uri: http::Uri = format!("http://a/{}", "p".repeat(10_000)).parse().unwrap();
        let recorded = recorded_url(&uri);
        assert_eq!(recorded.len(), MAX_RECORDED_URL_BYTES + '…'.len_utf8());
        assert!(recorded.ends_with("pp…"), "{recorded}");
    }
}
