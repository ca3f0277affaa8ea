//! Diagnostics: wasp's own log on stderr (`WASP_LOG`), and traces exported over
//! OTLP/HTTP (protobuf) to the user's collector when the standard variables name one
//! (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; the service's
//! name and resource from `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`; the batch
//! from `OTEL_BSP_*`). Off when unset.
//!
//! What is exported: an execution's span (`wasp.execution`), its nodes', and one per step
//! run (`wasp.step`, each attempt and iteration), with ids, names, statuses and failure
//! kinds as attributes, never an input, an output or a message (they can hold secrets).
//! A request's `traceparent` (W3C Trace Context) becomes the parent of the execution it
//! starts, and a step's outbound HTTP requests carry one.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::FilterExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// What must be flushed before the process ends: the trace exporter, when there is one.
pub struct Telemetry(Option<SdkTracerProvider>);

impl Telemetry {
    /// Send what is still batched (within the exporter's timeout).
    pub fn shutdown(self) {
        if let Some(provider) = self.0
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: the last traces could not be sent: {e}");
        }
    }
}

/// Install the diagnostics: the log on stderr, filtered by `log` (`WASP_LOG`, `warn` by
/// default) and coloured when `colour`; and the trace export when the environment names
/// a collector (an export that cannot be built is said on stderr, and left off).
pub fn init(log: Option<String>, colour: bool) -> Telemetry {
    let filter = log
        .and_then(|text| EnvFilter::try_new(text).ok())
        .unwrap_or_else(|| EnvFilter::new("warn"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_filter(filter);
    let provider = crate::env::OTLP_ENDPOINTS
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
        .then(exporter)
        .and_then(|built| {
            built
                .inspect_err(|e| eprintln!("warning: no trace export: {e}"))
                .ok()
        });
    let traces = provider.as_ref().map(|provider| {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("wasp"))
            // wasp's own spans, from INFO: not the HTTP stack's, nor wasmtime's; and no
            // events (a logged error's text would become a span event).
            .with_filter(
                EnvFilter::new("warn,wasp_runtime=info")
                    .and(tracing_subscriber::filter::filter_fn(|meta| meta.is_span())),
            )
    });
    tracing_subscriber::registry()
        .with(stderr)
        .with(traces)
        .init();
    Telemetry(provider)
}

/// The OTLP/HTTP exporter the environment configures, in a batch. An `https` collector
/// is refused: the exporter is built without TLS (send to a collector on plain HTTP,
/// e.g. one beside wasp, which forwards over TLS).
fn exporter() -> Result<SdkTracerProvider, String> {
    for name in crate::env::OTLP_ENDPOINTS {
        if let Ok(endpoint) = std::env::var(name)
            && endpoint
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("https:")
        {
            return Err(format!(
                "{name} is `{endpoint}`: wasp exports over plain HTTP only (no TLS); name a \
                 collector on http://, such as an OpenTelemetry Collector beside it"
            ));
        }
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| e.to_string())?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(
                    std::env::var(crate::env::OTEL_SERVICE_NAME)
                        .unwrap_or_else(|_| "wasp".to_owned()),
                )
                .build(),
        )
        .build())
}
