//! Replay: one step of an execution run again, as a new execution linked to the
//! original by `replay_of`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::keys::Identity;
use super::{Error, Report, Service, Started};
use crate::engine::Start;
use crate::playbook::{Playbook, PlaybookSpec};
use crate::store::{Sort, StepFilter, Window};
use crate::trace::{ExecutionHeader, Owner, StepRun, TriggerType};

/// Which logged run of a node to replay: the last attempt of the first iteration,
/// unless an iteration or an attempt is named.
#[derive(Debug, Clone, Copy, Default)]
pub struct Which {
    /// The `for_each` iteration, from 0.
    pub iteration: Option<usize>,
    /// The attempt, from 1.
    pub attempt: Option<u32>,
}

impl Service {
    /// Run a logged step of execution `key`, one `who` may see, again: node `node`'s run
    /// that `which` chooses, on `input`, or on the input it logged when `input` is
    /// `None` (refused when its level kept no input, or cut it at the capture cap).
    pub async fn replay_step(
        self: &Arc<Self>,
        who: &Identity,
        key: &str,
        node: &str,
        which: Which,
        input: Option<Value>,
        report: Report,
    ) -> Result<Started, Error> {
        let original = {
            let key = key.to_owned();
            self.blocking(move |store| store.execution(&key)).await?
        }
        .filter(|row| who.sees(&row.header.owner()))
        .ok_or_else(|| Error::NotFound(format!("there is no execution `{key}`")))?;
        let id = original.header.id.clone();
        let filter = StepFilter {
            tql: None,
            execution: Some(id.clone()),
            node: Some(node.to_owned()),
            scope: None,
        };
        let (runs, _) = self
            .blocking(move |store| store.step_runs(&filter, Window::all(Sort::OldestFirst)))
            .await?;
        let run = choose(runs.iter().map(|r| &r.run), which).ok_or_else(|| {
            Error::NotFound(format!(
                "execution `{id}` has no step run of node `{node}`{}{}",
                which
                    .iteration
                    .map_or_else(String::new, |i| format!(" iteration {i}")),
                which
                    .attempt
                    .map_or_else(String::new, |a| format!(" attempt {a}"))
            ))
        })?;
        let input = match input {
            Some(input) => input,
            None if !run.capture.data => {
                return Err(Error::Conflict(format!(
                    "the input of `{node}` was not logged: execution `{id}` ran at {}, and \
                     inputs are kept only at debug or trace. Send {{\"input\": …}} to replay \
                     with an input of your own",
                    original.header.log_level
                )));
            }
            None if run.capture.truncated.contains(&"input") => {
                return Err(Error::Conflict(format!(
                    "the logged input of `{node}` was cut at the capture cap; send \
                     {{\"input\": …}} to replay it whole"
                )));
            }
            None => run.input.clone().unwrap_or_default(),
        };
        self.replay(original.header, node, input, report).await
    }

    /// Run node `node` of the playbook `original` ran (as stored now) again, on
    /// `input`, as a new execution at `original`'s level whose `replay_of` is it.
    #[tracing::instrument(
        name = "service.replay",
        skip_all,
        fields(execution = %original.id, node = %node)
    )]
    pub async fn replay(
        self: &Arc<Self>,
        original: ExecutionHeader,
        node: &str,
        input: Value,
        report: Report,
    ) -> Result<Started, Error> {
        let owner = original.owner();
        let playbook = self
            .replay_playbook(&original.playbook_id, &owner, node)
            .await?;
        let start = Start {
            trigger_type: TriggerType::Manual,
            log_level: Some(original.log_level),
            replay_of: Some(original.id),
            ..Start::new(input)
        };
        self.start(Arc::new(playbook), start, report).await
    }

    /// A one-node playbook that runs node `node` of playbook `xid` (as stored now) on the
    /// trigger: its input is `${trigger}`, so the logged input is passed as data and never
    /// read as a template.
    async fn replay_playbook(
        &self,
        xid: &str,
        owner: &Owner,
        node: &str,
    ) -> Result<Playbook, Error> {
        let (key, tenant) = (xid.to_owned(), owner.tenant.clone());
        let record = self
            .blocking(move |store| store.playbook(&key, Some(&tenant)))
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!("there is no playbook `{xid}` to replay from"))
            })?;
        let Some(mut spec) = record.steps["nodes"].get(node).cloned() else {
            return Err(Error::NotFound(format!(
                "playbook `{xid}` has no node `{node}` any more"
            )));
        };
        if let Some(spec) = spec.as_object_mut() {
            spec.insert("input".to_owned(), json!("${trigger}"));
            spec.remove("for_each");
            spec.remove("concurrency");
        }
        let mut definition = json!({
            "id": xid,
            "name": format!("{} (replay of `{node}`)", record.name),
            "trigger": {"type": "manual"},
            "nodes": {node: spec},
        });
        for field in ["max_runtime", "log_level"] {
            if let Some(value) = record.steps.get(field) {
                definition[field] = value.clone();
            }
        }
        let text = definition.to_string();
        let spec = PlaybookSpec::parse("the replayed node", &text)
            .map_err(|e| Error::Conflict(e.to_string()))?;
        self.validate_spec("the replayed node", spec, owner)
            .map_err(|e| Error::Conflict(e.to_string()))
    }
}

/// The run `which` names among a node's runs: the last attempt of the chosen iteration
/// (the first iteration when none is named).
fn choose<'a>(runs: impl Iterator<Item = &'a StepRun>, which: Which) -> Option<&'a StepRun> {
    runs.filter(|r| which.iteration.is_none_or(|i| r.iteration == Some(i)))
        .filter(|r| which.attempt.is_none_or(|a| r.attempt == a))
        .min_by_key(|r| (r.iteration, std::cmp::Reverse(r.attempt)))
}
