//! Triggers the service fires itself: timers (cron or interval), and events matched
//! against the conditions of event playbooks.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Error, Report, Service, Started};
use crate::engine::StepRunner as _;
use crate::playbook::Playbook;
use crate::playbook::trigger::{Schedule, Trigger};
use crate::trace::TriggerType;

impl Service {
    /// Fire every enabled `auto_execute` event playbook `who` may use whose conditions all
    /// hold for `event`, in the order of their ids: each one's id and its start, or why
    /// it could not start (one that cannot does not keep the others from starting).
    pub async fn fire_event(
        self: &Arc<Self>,
        who: &super::keys::Identity,
        event: &Value,
    ) -> Vec<(String, Result<Started, Error>)> {
        let now = Utc::now();
        let mut fired: Vec<Arc<Playbook>> = self
            .runner
            .playbook_ids()
            .iter()
            .filter_map(|id| self.runner.playbook(id))
            .filter(|p| {
                who.may_use(p)
                    && p.enabled
                    && p.auto_execute
                    && matches!(p.trigger, Trigger::Event)
                    && p.conditions.matches(event, now)
            })
            .collect();
        fired.sort_by(|a, b| a.id.cmp(&b.id));
        let mut started = Vec::with_capacity(fired.len());
        for playbook in fired {
            let start = self
                .run(
                    Some(who),
                    &playbook.id,
                    event.clone(),
                    TriggerType::Event,
                    None,
                    Report::Start,
                )
                .await;
            started.push((playbook.id.clone(), start));
        }
        started
    }

    /// Start the timers of every timer playbook the server runs.
    pub fn start_timers(self: &Arc<Self>) {
        for id in self.runner.playbook_ids() {
            if let Some(playbook) = self.runner.playbook(&id) {
                self.schedule(&playbook);
            }
        }
    }

    /// (Re)start the timer of `playbook`, or stop it when it has none or is disabled.
    pub fn schedule(self: &Arc<Self>, playbook: &Arc<Playbook>) {
        let mut timers = crate::lock(&self.timers);
        if let Some(old) = timers.remove(&playbook.id) {
            old.task.abort();
        }
        let Trigger::Timer(schedule) = &playbook.trigger else {
            return;
        };
        if !playbook.enabled {
            return;
        }
        let due = Arc::new(std::sync::Mutex::new(schedule.next_after(Utc::now())));
        let task = tokio::spawn(tick(
            Arc::downgrade(self),
            playbook.id.clone(),
            schedule.clone(),
            Arc::clone(&due),
        ));
        timers.insert(
            playbook.id.clone(),
            Timer {
                task: task.abort_handle(),
                due,
            },
        );
    }

    /// Stop the timer of playbook `xid`, if it has one.
    pub fn unschedule(&self, xid: &str) {
        if let Some(timer) = crate::lock(&self.timers).remove(xid) {
            timer.task.abort();
        }
    }

    /// When the timer of playbook `xid` fires next, if it runs.
    pub fn next_due(&self, xid: &str) -> Option<DateTime<Utc>> {
        let timers = crate::lock(&self.timers);
        *crate::lock(&timers.get(xid)?.due)
    }
}

/// A running timer: its task, and when it fires next.
#[derive(Debug)]
pub(super) struct Timer {
    task: tokio::task::AbortHandle,
    due: Due,
}

/// A timer's next fire time, shared by its task and the playbook's record.
type Due = Arc<std::sync::Mutex<Option<DateTime<Utc>>>>;

/// Fire playbook `xid` on `schedule` until the service is gone or the timer is stopped,
/// keeping `due` at the next fire time.
async fn tick(service: std::sync::Weak<Service>, xid: String, schedule: Schedule, due: Due) {
    loop {
        let Some(at) = *crate::lock(&due) else {
            return;
        };
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        let Some(service) = service.upgrade() else {
            return;
        };
        let payload = json!({"scheduled_at": at, "fired_at": Utc::now()});
        // Started apart from this task, so that stopping the timer never cuts a start
        // in half.
        let run = {
            let xid = xid.clone();
            tokio::spawn(async move {
                service
                    .run(None, &xid, payload, TriggerType::Timer, None, Report::Start)
                    .await
            })
        };
        if let Ok(Err(e)) = run.await {
            tracing::warn!(playbook = %xid, error = %e, "a timer could not start its playbook");
        }
        // The next due time after this one, or after now if this one fired late: missed
        // times are skipped, never made up in a burst.
        let now = Utc::now();
        *crate::lock(&due) = schedule
            .next_after(at)
            .filter(|next| *next > now)
            .or_else(|| schedule.next_after(now));
    }
}
