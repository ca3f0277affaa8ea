//! Playbooks kept in the store: those created through the API, validated against the
//! apps and playbooks the service runs, stored, and served from then on.

use std::sync::Arc;

use serde_json::Value;

use super::keys::Identity;
use super::{Error, Service};
use crate::engine::StepRunner as _;
use crate::playbook::trigger::Trigger;
use crate::playbook::{Known, Playbook, PlaybookSpec};
use crate::store::{self, PlaybookRecord};
use crate::trace::Owner;

/// Where a playbook sent to the service comes from, in its error messages.
const BODY: &str = "the request body";

impl Service {
    /// Serve the playbooks created through the API in earlier runs, kept in the store
    /// (those from the playbooks directory are loaded from their files). One that no
    /// longer validates (an app gone) is skipped, and logged with the reason.
    pub fn load_stored_playbooks(&self) -> Result<(), store::Error> {
        let mut pending: Vec<PlaybookRecord> = self
            .store
            .playbooks()?
            .into_iter()
            .filter(|p| p.source == "api" && self.runner.playbook(&p.xid).is_none())
            .collect();
        // A playbook may call another stored one: load until no more can be.
        loop {
            let before = pending.len();
            let mut failed = Vec::new();
            for record in pending {
                let definition = record.steps.to_string();
                let owner = Owner {
                    tenant: record.tenant_id.clone(),
                    app: record.app_id.clone(),
                };
                match self.validate_playbook(definition.as_bytes(), &owner) {
                    Ok((playbook, _)) => self.runner.set_playbook(Arc::new(playbook)),
                    Err(e) => failed.push((record, e)),
                }
            }
            if failed.len() == before || failed.is_empty() {
                for (record, error) in &failed {
                    tracing::warn!(
                        playbook = %record.xid,
                        %error,
                        "a playbook from the database cannot be served"
                    );
                }
                return Ok(());
            }
            pending = failed.into_iter().map(|(record, _)| record).collect();
        }
    }

    /// The playbook in `body` (YAML or JSON) of `owner`, validated (its `playbook:` nodes
    /// may run the playbooks it may call, see [`Playbook::may_call`]), and its definition
    /// as JSON; every problem is named in the error.
    pub fn validate_playbook(
        &self,
        body: &[u8],
        owner: &Owner,
    ) -> Result<(Playbook, Value), Error> {
        let text = std::str::from_utf8(body)
            .map_err(|_| Error::Invalid("the body is not UTF-8 text".to_owned()))?;
        let spec = PlaybookSpec::parse(BODY, text).map_err(|e| Error::Invalid(e.to_string()))?;
        // The definition as written, read by the parser that read the spec: the YAML
        // parser's budget (250,000 YAML nodes) would turn a large JSON body into nothing.
        let definition: Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).unwrap_or_default()
        } else {
            serde_saphyr::from_str(text).unwrap_or_default()
        };
        let mut playbook = self
            .validate_spec(BODY, spec, owner)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        // A client names secrets as an API asset does: nothing else of the server's.
        if let Trigger::Webhook {
            secret: Some(secret),
        } = &mut playbook.trigger
        {
            *secret = secret
                .confined(self.secrets_dir.as_deref(), &owner.tenant)
                .map_err(|e| Error::Invalid(format!("`trigger.secret`: {e}")))?;
        }
        Ok((playbook, definition))
    }

    /// `spec` validated, as `owner`'s, against the apps and the playbooks it may call
    /// that the service runs now.
    pub(super) fn validate_spec(
        &self,
        file: &str,
        spec: PlaybookSpec,
        owner: &Owner,
    ) -> Result<Playbook, crate::playbook::Error> {
        let apps = self.runner.apps();
        let may_call = |child: &Playbook| {
            crate::trace::within_reach(
                (&owner.tenant, owner.app.as_deref()),
                (&child.tenant, child.app.as_deref()),
            )
        };
        let playbooks: Vec<String> = self
            .runner
            .playbook_ids()
            .into_iter()
            .filter(|id| self.runner.playbook(id).is_some_and(|p| may_call(&p)))
            .collect();
        // Assets are not checked: a server's may be made after the playbooks that
        // bind them (a run refuses what it cannot bind).
        let catalog = Known {
            apps: &*apps,
            playbooks: &playbooks,
            assets: None,
        };
        let mut playbook = Playbook::validate(file, spec, &catalog)?;
        playbook.tenant.clone_from(&owner.tenant);
        playbook.app.clone_from(&owner.app);
        Ok(playbook)
    }

    /// [`Service::validate_playbook`] on the blocking pool: parsing and validating a
    /// large body is CPU work of up to a few milliseconds per thousand nodes, and
    /// requests served meanwhile are not held behind it.
    async fn validated(
        self: &Arc<Self>,
        body: Vec<u8>,
        owner: Owner,
    ) -> Result<(Playbook, Value), Error> {
        let service = Arc::clone(self);
        let (playbook, definition) =
            tokio::task::spawn_blocking(move || service.validate_playbook(&body, &owner)).await??;
        check_secret_readable(&playbook)?;
        Ok((playbook, definition))
    }

    /// A new playbook from `body` by `who`: validated, stored as its tenant's (and its
    /// application's, when it acts for one), stamped with its subject, and served; its
    /// stored record. Playbook ids (XIDs) are one namespace: an id another tenant's
    /// playbook has, deleted or not, is taken.
    pub async fn create_playbook(
        self: &Arc<Self>,
        who: &Identity,
        body: Vec<u8>,
    ) -> Result<PlaybookRecord, Error> {
        let tenant = who.tenant.as_str();
        let owner = Owner {
            tenant: who.tenant.clone(),
            app: who.app.clone(),
        };
        let (playbook, definition) = self.validated(body, owner).await?;
        let xid = playbook.id.clone();
        let key = xid.clone();
        // By its XID exactly, of any tenant (a string or numeric id that reads as the
        // XID is another playbook).
        let existing = self
            .blocking(move |store| store.playbook(&key, None))
            .await?
            .filter(|p| p.xid == xid);
        let taken = self.playbook(&xid).is_some_and(|p| p.tenant != tenant)
            || existing.as_ref().is_some_and(|p| p.tenant_id != tenant);
        if taken {
            return Err(Error::Conflict(format!(
                "the playbook id `{xid}` is taken; choose another"
            )));
        }
        if let Some(existing) = existing {
            if !existing.is_deleted {
                return Err(Error::Conflict(format!(
                    "a playbook `{xid}` exists; change it with PUT /api/v1/playbooks/{xid}"
                )));
            }
            // A deleted playbook comes back as it was made: for its application.
            if !visible_to(who, &existing) {
                return Err(Error::Conflict(format!(
                    "the playbook id `{xid}` is taken; choose another"
                )));
            }
        }
        self.save_as(playbook, definition, false, who).await
    }

    /// Replace the definition of playbook `id`, one `who` may see, with `body`; its
    /// ids, stamps and run history stay, and executions already running keep the
    /// version they started with.
    pub async fn update_playbook(
        self: &Arc<Self>,
        who: &Identity,
        id: &str,
        body: Vec<u8>,
    ) -> Result<PlaybookRecord, Error> {
        let existing = self.visible_playbook(who, id).await?;
        // Its application stays the one it was made for.
        let owner = Owner {
            tenant: who.tenant.clone(),
            app: existing.app_id.clone(),
        };
        let (playbook, definition) = self.validated(body, owner).await?;
        if playbook.id != existing.xid {
            return Err(Error::Invalid(format!(
                "the body is playbook `{}`, but this is playbook `{}`: a playbook's id (its \
                 XID) does not change",
                playbook.id, existing.xid
            )));
        }
        let incompatible = self
            .playbook(&existing.xid)
            .is_some_and(|older| !playbook.keeps_steps_of(&older));
        self.save_as(playbook, definition, incompatible, who).await
    }

    /// Delete playbook `id`, one `who` may see, softly, stamped with its subject: its
    /// record and its executions stay, it no longer runs. Its record as deleted.
    pub async fn delete_playbook(&self, who: &Identity, id: &str) -> Result<PlaybookRecord, Error> {
        let record = self.visible_playbook(who, id).await?;
        let (owner, by) = (who.tenant.clone(), who.subject.clone());
        // By its string id, within its tenant: the playbook just found.
        let deleted = self
            .blocking(move |store| store.delete_playbook(&record.id, Some(&owner), by.as_deref()))
            .await?
            .ok_or_else(|| Error::NotFound(format!("there is no playbook `{id}`")))?;
        self.runner.remove_playbook(&deleted.xid);
        self.unschedule(&deleted.xid);
        Ok(deleted)
    }

    /// The stored record of playbook `id` (its XID, string or numeric id) when `who`
    /// may see it and it is not deleted; another tenant's (or application's) is not
    /// found, as a missing one.
    pub async fn visible_playbook(
        &self,
        who: &Identity,
        id: &str,
    ) -> Result<PlaybookRecord, Error> {
        let key = id.to_owned();
        let owner = who.tenant.clone();
        self.blocking(move |store| store.playbook(&key, Some(&owner)))
            .await?
            .filter(|p| !p.is_deleted && visible_to(who, p))
            .ok_or_else(|| Error::NotFound(format!("there is no playbook `{id}`")))
    }

    /// Store `playbook`, written by `who` (stamped with its subject, and with its
    /// application on a new record), and serve it from now on; the record's
    /// `schema_version` goes up when the change is `incompatible` with the version it
    /// replaces.
    async fn save_as(
        self: &Arc<Self>,
        playbook: Playbook,
        definition: Value,
        incompatible: bool,
        who: &Identity,
    ) -> Result<PlaybookRecord, Error> {
        let playbook = Arc::new(playbook);
        let saved = Arc::clone(&playbook);
        let (by, app) = (who.subject.clone(), who.app.clone());
        let record = self
            .blocking(move |store| {
                store.save_playbook(&store::PlaybookFields {
                    incompatible,
                    by: by.as_deref(),
                    app_id: app.as_deref(),
                    ..stored_fields(&saved, &definition, "api")
                })
            })
            .await?;
        self.runner.set_playbook(Arc::clone(&playbook));
        self.schedule(&playbook);
        Ok(record)
    }
}

/// What the store keeps of `playbook`, defined by `steps` (the file as written), from
/// `source` (`file` or `api`). Here and not in `store`, so that the
/// store need not know the playbook model.
pub fn stored_fields<'a>(
    playbook: &'a Playbook,
    steps: &'a Value,
    source: &'a str,
) -> store::PlaybookFields<'a> {
    store::PlaybookFields {
        xid: &playbook.id,
        tenant: &playbook.tenant,
        app_id: None,
        name: &playbook.name,
        description: &playbook.description,
        steps,
        source,
        category: playbook.labels.category.as_deref(),
        owner_id: playbook.labels.owner_id.as_deref(),
        incompatible: false,
        by: None,
        enabled: playbook.enabled,
        auto_execute: playbook.auto_execute,
        trigger_conditions: playbook.conditions.texts(),
        tags: &playbook.labels.tags,
        mitre_tactics: &playbook.labels.mitre_tactics,
        mitre_techniques: &playbook.labels.mitre_techniques,
        required_connector_ids: &playbook.labels.required_connector_ids,
    }
}

/// Whether `who` may see `record`: its tenant's, and its application's when `who` acts
/// for one (seed 003: an application's key sees that application's playbooks).
pub fn visible_to(who: &Identity, record: &PlaybookRecord) -> bool {
    who.reaches(&record.tenant_id, record.app_id.as_deref())
}

/// Refuse a playbook whose webhook secret cannot be read now: its hook could only
/// ever refuse.
fn check_secret_readable(playbook: &Playbook) -> Result<(), Error> {
    if let Trigger::Webhook {
        secret: Some(secret),
    } = &playbook.trigger
    {
        secret
            .read()
            .map_err(|e| Error::Invalid(format!("`trigger.secret`: {e}")))?;
    }
    Ok(())
}
