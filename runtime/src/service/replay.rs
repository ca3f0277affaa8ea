//! Replay: one step of an execution run again, as a new execution linked to the
//! original by `replay_of`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Error, Report, Service, Started};
use crate::engine::Start;
use crate::playbook::{Playbook, PlaybookSpec};
use crate::trace::{ExecutionHeader, TriggerType};

impl Service {
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
        let playbook = self.replay_playbook(&original.playbook_id, node).await?;
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
    async fn replay_playbook(&self, xid: &str, node: &str) -> Result<Playbook, Error> {
        let key = xid.to_owned();
        let record = self
            .blocking(move |store| store.playbook(&key))
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
        self.validate_spec("the replayed node", spec)
            .map_err(|e| Error::Conflict(e.to_string()))
    }
}
