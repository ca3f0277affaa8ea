//! What starts a playbook, checked: by hand (`manual`), a signed HTTP call (`webhook`),
//! a schedule (`timer`: cron with seconds and a time zone, or a fixed interval), or an
//! incoming event whose fields satisfy the playbook's `trigger_conditions` (`event`).
//!
//! Conditions are TQL expressions, the language executions are queried with (one
//! parser: [`crate::tql`]), evaluated over the event's JSON fields.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::spec::TriggerSpec;
use crate::tql;

/// What starts a playbook.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// A person, from the CLI, the API or the page.
    Manual,
    /// `POST /api/v1/hooks/{playbook}`; signed with HMAC-SHA256 when it has a secret.
    Webhook {
        /// Where the shared secret is read from.
        secret: Option<SecretSource>,
    },
    /// A schedule.
    Timer(Schedule),
    /// `POST /api/v1/events`, when the playbook's conditions match the event.
    Event,
}

impl Trigger {
    /// `manual`, `webhook`, `timer` or `event`.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Webhook { .. } => "webhook",
            Trigger::Timer(_) => "timer",
            Trigger::Event => "event",
        }
    }
}

/// Where a secret is read from when it is needed: never written into a playbook file,
/// the database or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable of the server.
    Env(String),
    /// A file on the server.
    File(PathBuf),
    /// A file inside the server's secrets directory, by a path relative to it: what a
    /// playbook sent through the API names (see [`crate::secrets`]).
    InSecretsDir {
        /// The secrets directory.
        dir: PathBuf,
        /// The file, relative to it.
        file: PathBuf,
    },
}

impl SecretSource {
    fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some(("env", name)) if !name.is_empty() => Ok(SecretSource::Env(name.to_owned())),
            Some(("file", path)) if !path.is_empty() => Ok(SecretSource::File(path.into())),
            _ => Err(format!(
                "`{text}` is not where a secret is kept: write `env:VARIABLE` or `file:PATH` \
                 (a secret itself never belongs in a playbook)"
            )),
        }
    }

    /// The same reference, held to what a client of the API acting in `tenant` may name:
    /// one of its `WASP_SECRET_*` variables, or a file of its part of `secrets_dir` (see
    /// [`crate::secrets`]).
    pub fn confined(&self, secrets_dir: Option<&Path>, tenant: &str) -> Result<Self, String> {
        match self {
            SecretSource::Env(var) => match crate::secrets::refuse_env(tenant, var) {
                Some(refused) => Err(refused),
                None => Ok(self.clone()),
            },
            SecretSource::File(path) => Ok(SecretSource::InSecretsDir {
                dir: crate::secrets::confine(secrets_dir, tenant, &path.to_string_lossy())?,
                file: path.clone(),
            }),
            SecretSource::InSecretsDir { .. } => Ok(self.clone()),
        }
    }

    /// The secret's bytes (a file's trailing newline dropped).
    pub fn read(&self) -> Result<Vec<u8>, String> {
        let bytes = match self {
            SecretSource::Env(name) => std::env::var(name)
                .map(String::into_bytes)
                .map_err(|_| format!("the environment variable `{name}` is not set"))?,
            SecretSource::File(path) => std::fs::read(path)
                .map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?,
            SecretSource::InSecretsDir { dir, file } => crate::secrets::read_confined(dir, file)?,
        };
        let trimmed = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err("the secret is empty".to_owned());
        }
        Ok(trimmed.to_vec())
    }
}

/// When a timer fires.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A cron expression (5 fields, or 6 with seconds first), in a time zone.
    Cron {
        /// As written.
        text: String,
        /// Parsed (boxed: it is large).
        cron: Box<croner::Cron>,
        /// Its time zone (UTC unless named).
        zone: chrono_tz::Tz,
    },
    /// A fixed interval, counted from when the server starts.
    Every(Duration),
}

impl Schedule {
    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { cron, zone, .. } => cron
                .find_next_occurrence(&after.with_timezone(zone), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            Schedule::Every(every) => Some(after + chrono::Duration::from_std(*every).ok()?),
        }
    }

    /// The next `n` fire times after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        std::iter::successors(self.next_after(after), |t| self.next_after(*t))
            .take(n)
            .collect()
    }
}

/// A playbook's `trigger_conditions`: all must hold for an event to fire it.
#[derive(Debug, Clone, Default)]
pub struct Conditions(Vec<(String, tql::Expr)>);

impl Conditions {
    /// Whether every condition holds for `event` at `now` (no conditions: always).
    pub fn matches(&self, event: &Value, now: DateTime<Utc>) -> bool {
        self.0
            .iter()
            .all(|(_, expr)| tql::matches(expr, event, now))
    }

    /// The conditions as written.
    pub fn texts(&self) -> Vec<&str> {
        self.0.iter().map(|(text, _)| text.as_str()).collect()
    }
}

/// The shortest timer interval: a shorter one is a typo that would flood the store.
const MIN_EVERY: Duration = Duration::from_secs(1);

/// Check `spec` and `conditions`; each problem goes to `problem(field, message)`.
pub fn check(
    spec: &TriggerSpec,
    conditions: &[String],
    problem: &mut dyn FnMut(String, String),
) -> (Trigger, Conditions) {
    let mut unused = |field: &str, value: &Option<String>, kind: &str| {
        if value.is_some() {
            problem(
                format!("trigger.{field}"),
                format!("only a {kind} trigger takes `{field}`"),
            );
        }
    };
    let trigger = match spec.kind.as_str() {
        "manual" | "event" => {
            unused("secret", &spec.secret, "webhook");
            for (field, value) in [
                ("cron", &spec.cron),
                ("timezone", &spec.timezone),
                ("every", &spec.every),
            ] {
                unused(field, value, "timer");
            }
            if spec.kind == "manual" {
                Trigger::Manual
            } else {
                Trigger::Event
            }
        }
        "webhook" => {
            for (field, value) in [
                ("cron", &spec.cron),
                ("timezone", &spec.timezone),
                ("every", &spec.every),
            ] {
                unused(field, value, "timer");
            }
            let secret = spec.secret.as_deref().and_then(|text| {
                SecretSource::parse(text)
                    .map_err(|e| problem("trigger.secret".to_owned(), e))
                    .ok()
            });
            Trigger::Webhook { secret }
        }
        "timer" => {
            unused("secret", &spec.secret, "webhook");
            match schedule(spec) {
                Ok(schedule) => Trigger::Timer(schedule),
                Err((field, message)) => {
                    problem(format!("trigger.{field}"), message);
                    Trigger::Manual
                }
            }
        }
        other => {
            problem(
                "trigger.type".to_owned(),
                format!(
                    "`{other}` is not a trigger type; expected manual, webhook, timer or event"
                ),
            );
            Trigger::Manual
        }
    };
    let mut parsed = Vec::new();
    for (i, text) in conditions.iter().enumerate() {
        match tql::parse(text) {
            Ok(Some(expr)) => parsed.push((text.clone(), expr)),
            Ok(None) => problem(
                format!("trigger_conditions[{i}]"),
                "the condition is empty".to_owned(),
            ),
            Err(e) => problem(format!("trigger_conditions[{i}]"), format!("`{text}`: {e}")),
        }
    }
    (trigger, Conditions(parsed))
}

/// The schedule of a timer trigger: `cron` (with `timezone`) or `every`.
fn schedule(spec: &TriggerSpec) -> Result<Schedule, (&'static str, String)> {
    match (&spec.cron, &spec.every) {
        (Some(_), Some(_)) => Err((
            "cron",
            "a timer takes `cron` or `every`, not both".to_owned(),
        )),
        (None, None) => Err((
            "cron",
            "a timer needs `cron` (e.g. \"0 */5 * * * *\") or `every` (e.g. 30s)".to_owned(),
        )),
        (None, Some(every)) => {
            if spec.timezone.is_some() {
                return Err((
                    "timezone",
                    "an interval has no time zone; it counts from when the server starts"
                        .to_owned(),
                ));
            }
            let every = super::parse_duration(every).map_err(|e| ("every", e))?;
            if every < MIN_EVERY {
                return Err(("every", format!("{every:?} is too often: at least 1s")));
            }
            Ok(Schedule::Every(every))
        }
        (Some(text), None) => {
            let cron = croner::Cron::from_str(text)
                .map_err(|e| ("cron", format!("`{text}` is not a cron expression: {e}")))?;
            let zone = match &spec.timezone {
                None => chrono_tz::UTC,
                Some(name) => name.parse::<chrono_tz::Tz>().map_err(|_| {
                    (
                        "timezone",
                        format!("`{name}` is not a time zone (use an IANA name like Europe/Paris)"),
                    )
                })?,
            };
            let schedule = Schedule::Cron {
                text: text.clone(),
                cron: Box::new(cron),
                zone,
            };
            if schedule.next_after(Utc::now()).is_none() {
                return Err(("cron", format!("`{text}` never fires")));
            }
            Ok(schedule)
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn spec(yaml: &str) -> TriggerSpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn checked(yaml: &str, conditions: &[&str]) -> (Trigger, Conditions, Vec<(String, String)>) {
        let mut problems = Vec::new();
        let conditions: Vec<String> = conditions.iter().map(|c| (*c).to_owned()).collect();
        let (trigger, conditions) = check(&spec(yaml), &conditions, &mut |f, m| {
            problems.push((f, m));
        });
        (trigger, conditions, problems)
    }

    #[test]
    fn a_cron_with_seconds_fires_in_its_time_zone() {
        let (trigger, _, problems) = checked(
            "{ type: timer, cron: \"30 0 9 * * *\", timezone: Europe/Paris }",
            &[],
        );
        assert_eq!(problems, []);
        let Trigger::Timer(schedule) = trigger else {
            panic!()
        };
        let winter = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
        // 09:00:30 in Paris is 08:00:30 UTC in winter.
        assert_eq!(
            schedule.upcoming(winter, 2),
            [
                Utc.with_ymd_and_hms(2026, 1, 11, 8, 0, 30).unwrap(),
                Utc.with_ymd_and_hms(2026, 1, 12, 8, 0, 30).unwrap()
            ]
        );
    }

    #[test]
    fn an_interval_counts_from_the_last_fire() {
        let (trigger, _, problems) = checked("{ type: timer, every: 90s }", &[]);
        assert_eq!(problems, []);
        let Trigger::Timer(schedule) = trigger else {
            panic!()
        };
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            schedule.upcoming(start, 2),
            [
                start + chrono::Duration::seconds(90),
                start + chrono::Duration::seconds(180)
            ]
        );
    }

    #[test]
    fn bad_triggers_are_refused_naming_the_field() {
        for (yaml, field) in [
            ("{ type: timer }", "trigger.cron"),
            ("{ type: timer, cron: \"61 * * * *\" }", "trigger.cron"),
            (
                "{ type: timer, cron: \"* * * * *\", timezone: Mars/Olympus }",
                "trigger.timezone",
            ),
            ("{ type: timer, every: 10ms }", "trigger.every"),
            (
                "{ type: timer, every: 1m, cron: \"* * * * *\" }",
                "trigger.cron",
            ),
            ("{ type: webhook, secret: hunter2 }", "trigger.secret"),
            ("{ type: manual, every: 1m }", "trigger.every"),
            ("{ type: email }", "trigger.type"),
        ] {
            let (_, _, problems) = checked(yaml, &[]);
            assert_eq!(problems.len(), 1, "{yaml}: {problems:?}");
            assert_eq!(problems[0].0, field, "{yaml}: {problems:?}");
        }
    }

    #[test]
    fn a_bad_condition_is_refused_with_its_position() {
        let (_, _, problems) = checked("{ type: event }", &["severity >= 5", "type = "]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "trigger_conditions[1]");
        assert!(problems[0].1.contains("position 8"), "{problems:?}");
    }

    #[test]
    fn conditions_match_numbers_strings_lists_and_missing_fields() {
        let now = Utc::now();
        let event = json!({
            "type": "alert", "severity": 8, "score": "73.5", "source": "EDR-West",
            "tags": ["phishing", "vip"], "fields": {"src_ip": "185.220.101.47"},
            "seen": (now - chrono::Duration::minutes(5)).to_rfc3339(),
        });
        let holds = |condition: &str| {
            let (_, conditions, problems) = checked("{ type: event }", &[condition]);
            assert_eq!(problems, [], "{condition}");
            conditions.matches(&event, now)
        };
        for condition in [
            "type = \"alert\"",
            "severity >= 7 AND severity < 9",
            "score > 70",
            "source STARTSWITH \"edr\"",
            "fields.src_ip = \"185.220.101.47\"",
            "tags = \"vip\"",
            "tags IN (\"malware\", \"phishing\")",
            "tags NOT IN (\"benign\")",
            "owner ISNULL",
            "NOT owner = \"alice\"",
            "seen > \"NOW() - 1 HOUR\"",
            "(severity > 9 OR type = \"alert\") AND source CONTAINS \"west\"",
        ] {
            assert!(holds(condition), "{condition} should hold");
        }
        for condition in [
            "type = \"Alert\"",
            "severity > 8",
            "tags = \"benign\"",
            "tags != \"vip\"",
            "owner = \"alice\"",
            "owner != \"alice\"",
            "fields.dst_ip IS NOT NULL",
            "seen < \"NOW() - 1 HOUR\"",
            "type IN (\"incident\")",
        ] {
            assert!(!holds(condition), "{condition} should not hold");
        }
    }
}
