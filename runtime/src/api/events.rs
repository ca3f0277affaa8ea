//! Server-Sent Events: one execution's events after a snapshot of it, or every
//! execution's, as the service's writer broadcasts them once stored.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, KeepAliveStream, Sse};
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{ApiError, Caller, Params, Service};
use crate::store::ExecutionRecord;
use crate::trace::{Event, ExecutionStatus};

/// The names of the events a stream carries.
const EVENT_TYPES: [&str; 4] = [
    "node_started",
    "node_ended",
    "step_ended",
    "execution_ended",
];

/// The SSE event name of `event`.
fn event_type(event: &Event) -> &'static str {
    match event {
        Event::NodeStarted { .. } => EVENT_TYPES[0],
        Event::NodeEnded { .. } => EVENT_TYPES[1],
        Event::StepEnded { .. } => EVENT_TYPES[2],
        Event::ExecutionEnded { .. } => EVENT_TYPES[3],
    }
}

/// One SSE message for `event`.
fn sse(event: &Event) -> SseEvent {
    let name = event_type(event);
    SseEvent::default()
        .event(name)
        .json_data(event)
        .unwrap_or_else(|_| SseEvent::default().event(name))
}

/// What a stream reads next from the broadcast.
enum Received {
    /// An event it wants.
    Event(Arc<Event>),
    /// It fell behind and missed events.
    Lagged,
}

impl Received {
    /// The SSE message: the event, or `lagged`, so that a client can reload. (Not how
    /// many were missed: the count is of every tenant's events, which would tell a
    /// listener how busy the others are.)
    fn message(&self) -> SseEvent {
        match self {
            Received::Event(event) => sse(event),
            Received::Lagged => SseEvent::default().event("lagged").data("{}"),
        }
    }
}

/// The next event of `receiver` that `keep` accepts; `None` when the server stops.
async fn next_event(
    receiver: &mut broadcast::Receiver<Arc<Event>>,
    keep: impl Fn(&Event) -> bool,
) -> Option<Received> {
    loop {
        match receiver.recv().await {
            Ok(event) if keep(&event) => return Some(Received::Event(event)),
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return Some(Received::Lagged),
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

type Events = std::pin::Pin<Box<dyn Stream<Item = Result<SseEvent, Infallible>> + Send>>;
type EventStream = Sse<KeepAliveStream<Events>>;

/// `GET /api/v1/executions/{id}/events`: a `snapshot` of the execution now, then its
/// events as they happen, ending after `execution_ended`.
pub(super) async fn execution_events(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
) -> Result<EventStream, ApiError> {
    // Subscribe before reading the state, so that nothing falls between the two.
    let receiver = service.subscribe();
    let key = id.clone();
    let (row, nodes) = service
        .blocking(move |store| {
            let row = store
                .execution(&key)?
                .filter(|row| caller.sees(&row.header.owner()));
            let nodes = match &row {
                // Running: its nodes' states (its record, steps and all, is not read).
                Some(row) if row.completed_at.is_none() => {
                    json!(store.node_states(&row.header.id)?)
                }
                Some(row) => match store.execution_record(&row.header.id)? {
                    Some(ExecutionRecord::Ended(record)) => record["nodes"].clone(),
                    _ => json!(store.node_states(&row.header.id)?),
                },
                None => Value::Null,
            };
            Ok((row, nodes))
        })
        .await?;
    let row = row.ok_or_else(|| ApiError::NotFound(format!("there is no execution `{id}`")))?;
    let snapshot = SseEvent::default()
        .event("snapshot")
        .json_data(json!({"execution": row, "nodes": nodes}))
        .map_err(ApiError::internal)?;
    let finished = !matches!(
        row.status,
        ExecutionStatus::Running | ExecutionStatus::Queued
    );
    let execution_id = row.header.id;
    let stream = futures_util::stream::unfold(
        (receiver, Some(snapshot), finished),
        move |(mut receiver, first, done)| {
            let execution_id = execution_id.clone();
            let service = Arc::clone(&service);
            async move {
                if let Some(first) = first {
                    return Some((Ok(first), (receiver, None, done)));
                }
                if done {
                    return None;
                }
                let next = next_event(&mut receiver, |e| e.execution_id() == execution_id).await?;
                let ended = if let Received::Event(event) = &next {
                    matches!(&**event, Event::ExecutionEnded { .. })
                } else {
                    // The end may be among the missed events: ask the store.
                    let key = execution_id.clone();
                    service
                        .blocking(move |store| store.execution(&key))
                        .await
                        .ok()
                        .flatten()
                        .is_none_or(|row| {
                            !matches!(
                                row.status,
                                ExecutionStatus::Running | ExecutionStatus::Queued
                            )
                        })
                };
                Some((Ok(next.message()), (receiver, None, ended)))
            }
        },
    );
    Ok(Sse::new(Box::pin(stream) as Events).keep_alive(KeepAlive::default()))
}

/// `GET /api/v1/events`: every execution's events as they happen.
/// `GET /api/v1/events[?types=node_started,execution_ended]`: every execution's events,
/// or only those of the named types (a list page needs starts and ends, not every
/// step's log lines).
pub(super) async fn all_events(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Query(params): Params,
) -> Result<EventStream, ApiError> {
    let types: Option<Vec<String>> = match params.get("types") {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(|name| {
                    let name = name.trim();
                    if EVENT_TYPES.contains(&name) {
                        Ok(name.to_owned())
                    } else {
                        Err(ApiError::BadRequest(format!(
                            "`types`: `{name}` is not an event type; expected {}",
                            EVENT_TYPES.join(", ")
                        )))
                    }
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    let receiver = service.subscribe();
    let stream = futures_util::stream::unfold((receiver, types), move |(mut receiver, types)| {
        let caller = caller.clone();
        async move {
            // Only the events the caller may see, of the types asked for.
            let keep = |event: &Event| {
                caller.sees(event.owner())
                    && types
                        .as_ref()
                        .is_none_or(|types| types.iter().any(|t| t == event_type(event)))
            };
            let next = next_event(&mut receiver, keep).await?;
            Some((Ok(next.message()), (receiver, types)))
        }
    });
    Ok(Sse::new(Box::pin(stream) as Events).keep_alive(KeepAlive::default()))
}
