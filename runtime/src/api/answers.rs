//! The native API's answers that are not a stored record as it is: typed, so that the
//! handlers and the OpenAPI document (`openapi.rs`, which takes their JSON Schemas)
//! cannot disagree.

use serde::Serialize;

use crate::service::Started;

/// A 4xx or 5xx: what went wrong, and the status again.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct Problem {
    /// What was wrong and where (a 5xx says only "internal error"; the cause is in the
    /// server's log).
    pub error: String,
    /// The HTTP status.
    pub status: u16,
}

/// A list: how many, and them.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct Listing<T> {
    /// How many match in all (a page may hold fewer).
    pub count: i64,
    /// The items.
    pub data: Vec<T>,
}

/// A page of executions.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct ExecutionPage {
    /// Whether another page follows.
    pub more: bool,
    /// The executions, without their nodes and steps.
    pub data: Vec<crate::store::ExecutionRow>,
    /// How many match in all, when asked for with `count=true` (it reads every match).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
}

/// An execution just started (202): where to find it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct StartedExecution {
    /// The execution's id (`ex_…`).
    pub execution_id: String,
    /// Its number.
    pub id: Option<i64>,
    /// `Queued` (waiting under the playbook's `max_concurrent`) or `Running`.
    pub status: &'static str,
    /// Where to read it.
    pub links: Links,
}

impl StartedExecution {
    pub(super) fn of(started: &Started) -> Self {
        Self {
            execution_id: started.id.clone(),
            id: started.num,
            status: started.status(),
            links: Links {
                execution: format!("/api/v1/executions/{}", started.id),
            },
        }
    }
}

/// Where to read an execution.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct Links {
    /// Its record.
    pub execution: String,
}

/// A kill asked for (202): the execution ends Killed in a moment.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct Killed {
    /// Always true.
    pub killed: bool,
    /// The execution.
    pub execution_id: String,
}

/// What an event fired (202).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct Fired {
    /// How many playbooks' conditions held.
    pub matched: usize,
    /// The executions started.
    pub executions: Vec<FiredExecution>,
    /// The playbooks whose execution could not start, with why.
    pub failed: Vec<NotFired>,
}

/// An execution an event started.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct FiredExecution {
    /// The playbook's XID.
    pub playbook: String,
    /// The execution.
    #[serde(flatten)]
    pub started: StartedExecution,
}

/// A playbook an event matched that could not start.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct NotFired {
    /// The playbook's XID.
    pub playbook: String,
    /// Why.
    pub error: String,
}

/// The body of a replay: the input to use instead of the logged one.
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
pub(super) struct ReplayBody {
    /// The step's input; without it, the input the step logged.
    pub input: Option<serde_json::Value>,
}
