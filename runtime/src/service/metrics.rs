//! The server's metrics, for Prometheus to scrape (`GET /metrics`): executions started
//! and ended, step durations, sandbox failures, what is running and queued, the store's
//! writes, the HTTP requests served, and the build. Every label is bounded: no execution
//! id is a label, routes are their patterns, and each label of names (playbooks, apps,
//! actions, assets) keeps at most [`MAX_NAMES`] values, the rest counted as `other`.
//!
//! The registry is the service's own (no global one): two servers in one process, as
//! tests run them, count apart.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::trace::{Execution, StepRun, TriggerType};

/// The most values a label of names keeps.
pub const MAX_NAMES: usize = 1000;
/// What stands for the names past [`MAX_NAMES`].
const OTHER: &str = "other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Started {
    playbook: String,
    trigger: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Ended {
    playbook: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Step {
    app: String,
    action: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Failure {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outbound {
    asset: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Build {
    version: String,
}

/// The server's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    started: Family<Started, Counter>,
    ended: Family<Ended, Counter>,
    steps: Family<Step, Histogram>,
    failures: Family<Failure, Counter>,
    egress: Family<Outbound, Counter>,
    running: Gauge,
    queued: Gauge,
    /// Executions waiting for a place (kept here, set on the gauge when scraped).
    waiting: AtomicI64,
    writes: Histogram,
    batches: Histogram,
    requests: Family<Request, Counter>,
    /// The names each label of names has taken, by label.
    names: [RwLock<HashSet<String>>; 4],
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric, at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wasp");
        let started = Family::<Started, Counter>::default();
        registry.register(
            "executions_started",
            "Executions started, by playbook and trigger type",
            started.clone(),
        );
        let ended = Family::<Ended, Counter>::default();
        registry.register(
            "executions_ended",
            "Executions ended and stored, by playbook and status",
            ended.clone(),
        );
        let steps = Family::<Step, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_01, 4.0, 12))
        });
        registry.register(
            "step_duration_seconds",
            "How long step runs took, by app, action and status",
            steps.clone(),
        );
        let failures = Family::<Failure, Counter>::default();
        registry.register(
            "step_failures",
            "Step runs that failed, by kind (app_error, timeout, memory_limit, trap, ...)",
            failures.clone(),
        );
        let egress = Family::<Outbound, Counter>::default();
        registry.register(
            "egress_requests",
            "Outbound HTTP requests of step runs, by the asset they bound (none: `-`) and \
             outcome (sent, refused)",
            egress.clone(),
        );
        let running = Gauge::default();
        registry.register(
            "executions_running",
            "Executions running now",
            running.clone(),
        );
        let queued = Gauge::default();
        registry.register(
            "executions_queued",
            "Executions waiting for their playbook's max_concurrent",
            queued.clone(),
        );
        let writes = Histogram::new(exponential_buckets(0.000_05, 3.0, 12));
        registry.register(
            "store_write_seconds",
            "How long each batch written to the store took",
            writes.clone(),
        );
        let batches = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "store_batch_writes",
            "Changes written in each batch (group commit)",
            batches.clone(),
        );
        let requests = Family::<Request, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            requests.clone(),
        );
        let build = Family::<Build, Gauge>::default();
        build
            .get_or_create(&Build {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("build_info", "The wasp version serving", build);
        Self {
            registry,
            started,
            ended,
            steps,
            failures,
            egress,
            running,
            queued,
            waiting: AtomicI64::new(0),
            writes,
            batches,
            requests,
            names: Default::default(),
        }
    }

    /// `name` as a value of the label `kind`: itself while that label has room, else
    /// `other` (one it already has stays itself).
    fn name(&self, kind: Kind, name: &str) -> String {
        let names = &self.names[kind as usize];
        // Known names (nearly every call) share the lock.
        if names
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(name)
        {
            return name.to_owned();
        }
        let mut names = names.write().unwrap_or_else(PoisonError::into_inner);
        if names.contains(name) {
            return name.to_owned();
        }
        if names.len() >= MAX_NAMES {
            return OTHER.to_owned();
        }
        names.insert(name.to_owned());
        name.to_owned()
    }

    /// An execution of `playbook` started by `trigger`.
    pub fn started(&self, playbook: &str, trigger: TriggerType) {
        let labels = Started {
            playbook: self.name(Kind::Playbook, playbook),
            trigger: word(&trigger),
        };
        self.started.get_or_create(&labels).inc();
    }

    /// An execution waits for its place (`true`), or no longer does.
    pub fn waiting(&self, waits: bool) {
        self.waiting
            .fetch_add(if waits { 1 } else { -1 }, Ordering::Relaxed);
    }

    /// `execution` (and each child) ended and was stored: its status, its step runs
    /// (`asset` names the asset a node of a playbook binds). A child, started inside its
    /// parent, is counted as started here too.
    pub fn ended(&self, execution: &Execution, asset: &dyn Fn(&str, &str) -> Option<String>) {
        let labels = Ended {
            playbook: self.name(Kind::Playbook, &execution.header.playbook_id),
            status: word(&execution.status),
        };
        self.ended.get_or_create(&labels).inc();
        for step in &execution.steps {
            self.step(step);
            let egress = step.report.egress;
            if !egress.is_empty() {
                let asset = asset(&execution.header.playbook_id, &step.node)
                    .map_or_else(|| "-".to_owned(), |name| self.name(Kind::Asset, &name));
                let sent = egress.requests.saturating_sub(egress.refused);
                for (outcome, count) in [("sent", sent), ("refused", egress.refused)] {
                    let labels = Outbound {
                        asset: asset.clone(),
                        outcome: outcome.to_owned(),
                    };
                    self.egress.get_or_create(&labels).inc_by(count);
                }
            }
        }
        for child in &execution.children {
            self.started(&child.header.playbook_id, child.header.trigger_type);
            self.ended(child, asset);
        }
    }

    fn step(&self, step: &StepRun) {
        let labels = Step {
            app: self.name(Kind::App, &step.app),
            action: self.name(Kind::Action, &step.action),
            status: word(&step.report.status),
        };
        let seconds = Duration::from_micros(step.report.duration_us).as_secs_f64();
        self.steps.get_or_create(&labels).observe(seconds);
        if let Some(error) = &step.report.error {
            let kind = Failure {
                kind: word(&error.kind),
            };
            self.failures.get_or_create(&kind).inc();
        }
    }

    /// A batch of `changes` written to the store in `took`.
    pub fn wrote(&self, changes: usize, took: Duration) {
        self.writes.observe(took.as_secs_f64());
        self.batches.observe(changes as f64);
    }

    /// An HTTP request to `route` (the route's pattern, never the path asked for: a
    /// bounded set) answered with `status`.
    pub fn request(&self, route: &str, method: &str, status: u16) {
        let labels = Request {
            route: route.to_owned(),
            method: method.to_owned(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
    }

    /// Everything, in Prometheus's text format, with `running` executions now (those
    /// waiting for their place among them: they are counted as queued instead).
    pub fn text(&self, running: usize) -> String {
        let queued = self.waiting.load(Ordering::Relaxed).max(0);
        let running = i64::try_from(running).unwrap_or(i64::MAX);
        self.running.set(running.saturating_sub(queued).max(0));
        self.queued.set(queued);
        let mut text = String::new();
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// The labels of names, each with its own [`MAX_NAMES`].
#[derive(Clone, Copy)]
enum Kind {
    Playbook,
    App,
    Action,
    Asset,
}

/// The word serde writes for `value` (a status or a kind).
fn word<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The `Content-Type` of [`Metrics::text`].
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_past_the_bound_are_counted_as_other() {
        let metrics = Metrics::new();
        for n in 0..MAX_NAMES + 5 {
            metrics.started(&format!("p{n}"), TriggerType::Manual);
        }
        let text = metrics.text(0);
        assert!(text.contains("playbook=\"p0\""), "{text}");
        assert!(!text.contains(&format!("playbook=\"p{}\"", MAX_NAMES + 1)));
        assert!(
            text.contains("wasp_executions_started_total{playbook=\"other\",trigger=\"MANUAL\"} 5")
        );
        assert!(text.contains("wasp_build_info{version="));
    }
}
