//! The store of a team's service: one PostgreSQL database.
//!
//! The [`Store`] trait is synchronous (SQLite is a library call); this backend is
//! `tokio-postgres` behind a `deadpool-postgres` pool. Its connections run on a runtime
//! of its own (one thread), and each call blocks its caller until the server answers:
//! the same contract as SQLite's, where a call blocks on the disk. (Blocking on a future
//! needs no runtime of the caller's; entering the store's runtime lets the pool open a
//! connection from any thread.)
//!
//! Times are milliseconds since the epoch, as in SQLite, so that both backends share
//! their queries' shapes (`super::render`, `super::stored`); PostgreSQL's numbered,
//! typed parameters are put in at the end (`render::numbered`).
//!
//! Migrations run when the store opens, all in one transaction under an advisory lock,
//! so that two nodes starting at once do not race: the second waits, then finds them
//! applied.

mod batch;
mod schema;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::render::{self, Dialect, Sql, SqlValue, numbered};
use super::stored::{
    AUDIT_COLUMNS, Column, Columns, EXECUTION_COLUMNS, KEY_COLUMNS, LOG_LINES, NODE_STATES_OF,
    PLAYBOOK_COLUMNS, STEP_RUNS, audit_key, audit_row, execution_row, key_row, log_row, millis,
    node_state, number, order, parse_word, playbook_row, restore_step, step_run_row,
};
use super::{
    ApiKey, AuditFilter, AuditOrder, AuditRow, Error, ExecutionFilter, ExecutionRecord,
    ExecutionRow, Interrupted, LogFilter, LogRow, NodeState, Page, PlaybookFields, PlaybookRecord,
    RunStats, SoarQuery, StepFilter, StepRunRow, Store, Window, Write,
};
use schema::MIGRATIONS;

/// SecMaster's audit rows, in this dialect.
static AUDIT_ROWS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| render::audit_rows(Dialect::Postgres));

/// The advisory lock migrations run under (`wasp` in ASCII).
const MIGRATION_LOCK: i64 = 0x7761_7370;

/// The advisory lock a serving process holds (`wasp` and `serve`).
const SERVING_LOCK: i64 = 0x7761_7370_7365_7276;

/// How often a serving process checks that it still holds [`SERVING_LOCK`].
const SERVING_CHECK: Duration = Duration::from_secs(5);

/// Connections kept at most.
const POOL_SIZE: usize = 16;

/// How long a call waits for a connection, and a new connection for the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection is idle before TCP asks whether the server is still there.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

/// The PostgreSQL store.
pub struct PgStore {
    pool: Pool,
    /// Where the connections run. Shut down in the background on drop (a runtime
    /// dropped from a task would panic).
    runtime: Option<tokio::runtime::Runtime>,
    /// The server and database, without credentials, for messages.
    server: String,
    /// Whether this process claimed the serving lock ([`Store::claim_for_serving`]).
    serving: std::sync::atomic::AtomicBool,
    /// Set when the serving lock was lost (its session ended and another server took
    /// it, or it could not be taken back).
    serving_lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// `text` as a column can hold it: PostgreSQL's text refuses the NUL character, which
/// an app may put in a message. (The step's record, JSON, keeps it escaped.)
fn column(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// `record` as a `jsonb` column holds it: `jsonb` refuses the NUL character, so a
/// string (or key) that holds one is kept with U+FFFD in its place.
fn storable(record: &Value) -> Cow<'_, Value> {
    fn has_nul(value: &Value) -> bool {
        match value {
            Value::String(text) => text.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    fn replaced(value: &Value) -> Value {
        match value {
            Value::String(text) => Value::String(column(text).into_owned()),
            Value::Array(items) => Value::Array(items.iter().map(replaced).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (column(k).into_owned(), replaced(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    if has_nul(record) {
        Cow::Owned(replaced(record))
    } else {
        Cow::Borrowed(record)
    }
}

impl Columns for Row {
    type Error = Error;

    fn get<T: Column>(&self, i: usize) -> Result<T, Error> {
        Ok(self.try_get(i)?)
    }

    fn word<T: serde::de::DeserializeOwned>(&self, i: usize) -> Result<T, Error> {
        let text: &str = self.try_get(i)?;
        parse_word(text).map_err(|e| Error::Column(format!("`{text}`: {e}")))
    }

    fn decoded<T: serde::de::DeserializeOwned>(&self, i: usize) -> Result<Option<T>, Error> {
        let Some(text) = self.try_get::<_, Option<&str>>(i)? else {
            return Ok(None);
        };
        serde_json::from_str(text)
            .map(Some)
            .map_err(|source| Error::Corrupt {
                what: format!("column {i}"),
                source,
            })
    }

    fn json_part(&self, i: usize) -> Result<String, Error> {
        Ok(json_text(self.try_get(i)?))
    }

    fn missing(&self, i: usize) -> Error {
        Error::Column(format!("column {i} holds NULL"))
    }
}

/// A part of a stored record as the audit rows give it: its JSON text, a string
/// unquoted (as SQLite's `json_extract` gives it).
fn json_text(text: String) -> String {
    if text.starts_with('"')
        && let Ok(Value::String(unquoted)) = serde_json::from_str(&text)
    {
        return unquoted;
    }
    text
}

/// A count or id that does not fit `i64`, at its most.
fn int(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// `params` as the client binds them.
fn bind(params: &[SqlValue]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl PgStore {
    /// Connect to the database at `url` (`postgres://user@host:port/db`, or key=value
    /// pairs; the password from the URL or else `PGPASSWORD`) and bring its schema up
    /// to date.
    pub fn open(url: &str) -> Result<Self, Error> {
        let (url, root_cert) = take_root_cert(url);
        let chose_sslmode = url.contains("sslmode=");
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| Error::Connect {
            server: "the database URL".to_owned(),
            reason: format!("it does not parse: {e}"),
        })?;
        if config.get_password().is_none()
            && let Ok(password) = std::env::var("PGPASSWORD")
        {
            config.password(password);
        }
        if config.get_application_name().is_none() {
            config.application_name("wasp");
        }
        config.connect_timeout(CONNECT_TIMEOUT);
        // A connection a firewall dropped is found within minutes, not hours.
        config.keepalives_idle(KEEPALIVE_IDLE);
        if at_in_host(&config) {
            return Err(Error::Connect {
                server: "the database URL".to_owned(),
                reason: "its host holds an `@`: a password with `@` must be written `%40`"
                    .to_owned(),
            });
        }
        // Unless the URL says: TLS to another machine, plain text on this one.
        if !chose_sslmode {
            config.ssl_mode(if on_this_machine(&config) {
                tokio_postgres::config::SslMode::Disable
            } else {
                tokio_postgres::config::SslMode::Require
            });
        }
        let root_cert = root_cert.or_else(|| std::env::var_os("PGSSLROOTCERT").map(PathBuf::from));
        let tls = tls(root_cert.as_deref()).map_err(|reason| Error::Connect {
            server: describe(&config),
            reason,
        })?;
        // Every statement ends within its bound, and `\` in a string is itself (what
        // the `LIKE … ESCAPE '\'` of the store's queries say), whatever the server's
        // defaults.
        let options = [
            config.get_options().unwrap_or_default(),
            "-c statement_timeout=60000 -c standard_conforming_strings=on",
        ]
        .join(" ");
        config.options(options.trim());
        let server = describe(&config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("wasp-postgres")
            .enable_all()
            .build()
            .map_err(|e| Error::Connect {
                server: server.clone(),
                reason: format!("cannot start its runtime: {e}"),
            })?;
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| Error::Connect {
                server: server.clone(),
                reason: e.to_string(),
            })?;
        let store = Self {
            pool,
            runtime: Some(runtime),
            server,
            serving: std::sync::atomic::AtomicBool::new(false),
            serving_lost: std::sync::Arc::default(),
        };
        store.block(store.migrate())?;
        Ok(store)
    }

    /// Run `work` to its end on this thread, with the store's runtime entered.
    ///
    /// On a worker of a multi-threaded Tokio runtime (the server's writer calls from
    /// one) the worker hands its other tasks over first (`block_in_place`): a round trip
    /// to the server must not hold them up. And Tokio's cooperative budget is off for
    /// the work: a task that has spent its budget is told `Pending`, with the wake-up
    /// deferred until it yields, which a blocked thread never does.
    fn block<T>(&self, work: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        let run = || {
            let _entered = self.runtime.as_ref().map(tokio::runtime::Runtime::enter);
            futures_executor::block_on(tokio::task::unconstrained(work))
        };
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(run),
            _ => run(),
        }
    }

    /// A connection from the pool.
    async fn client(&self) -> Result<deadpool_postgres::Object, Error> {
        self.pool.get().await.map_err(|e| Error::Connect {
            server: self.server.clone(),
            reason: crate::ErrorChain(&e).to_string(),
        })
    }

    async fn migrate(&self) -> Result<(), Error> {
        let mut client = self.client().await?;
        // Read committed whatever the server's default: after waiting for the lock, the
        // schema another process just migrated must be seen.
        let transaction = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
            .start()
            .await?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        transaction
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS wasp_schema (
                    version INTEGER PRIMARY KEY,
                    applied_at BIGINT NOT NULL
                )",
            )
            .await?;
        let applied: i32 = transaction
            .query_one("SELECT coalesce(max(version), 0) FROM wasp_schema", &[])
            .await?
            .try_get(0)?;
        let applied = usize::try_from(applied).unwrap_or(0);
        if applied > MIGRATIONS.len() {
            return Err(Error::Newer {
                path: self.server.clone(),
                version: applied,
                known: MIGRATIONS.len(),
            });
        }
        for (version, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            transaction.batch_execute(migration).await?;
            let version = i32::try_from(version + 1).unwrap_or(i32::MAX);
            transaction
                .execute(
                    "INSERT INTO wasp_schema (version, applied_at) VALUES ($1, $2)",
                    &[&version, &millis(Utc::now())],
                )
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// The rows of `sql` (with a `?` for each of `params`).
    async fn rows(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, Error> {
        let client = self.client().await?;
        Ok(client.query(&numbered(sql, params), &bind(params)).await?)
    }

    /// How many rows `from` has where `condition` holds.
    async fn count(&self, from: &str, condition: &Sql) -> Result<i64, Error> {
        let rows = self
            .rows(
                &format!("SELECT count(*) FROM {from} WHERE {}", condition.text),
                &condition.params,
            )
            .await?;
        Ok(match rows.first() {
            Some(row) => row.try_get(0)?,
            None => 0,
        })
    }

    /// The page `window` of `columns` of `from` where `condition` holds, ordered by
    /// `key`, each row read by `read_row`; and how many rows match in all.
    fn page<T>(
        &self,
        condition: Sql,
        window: Window,
        from: &str,
        key: &str,
        columns: &str,
        read_row: impl Fn(&Row) -> Result<T, Error>,
    ) -> Result<(Vec<T>, i64), Error> {
        self.block(async {
            let total = self.count(from, &condition).await?;
            let Sql {
                text: condition,
                mut params,
            } = condition;
            params.push(SqlValue::Integer(window.limit));
            params.push(SqlValue::Integer(window.offset));
            let order = order(window.sort);
            let nulls = render::nulls_as_least(window.sort == super::Sort::NewestFirst);
            let rows = self
                .rows(
                    &format!(
                        "SELECT {columns} FROM {from} WHERE {condition} \
                         ORDER BY {key} {order}{nulls} LIMIT ? OFFSET ?"
                    ),
                    &params,
                )
                .await?;
            let rows = rows.iter().map(read_row).collect::<Result<Vec<_>, _>>()?;
            Ok((rows, total))
        })
    }

    /// The page of the SOAR `records` that `query` matches, in its order, and how many
    /// match.
    fn soar_page(
        &self,
        records: render::SoarRecords,
        query: &SoarQuery,
    ) -> Result<(Vec<Value>, i64), Error> {
        let (condition, order) = render::soar(Dialect::Postgres, records, query);
        let table = records.table();
        self.block(async {
            let total = self.count(table, &condition).await?;
            let mut params = condition.params;
            params.extend([
                SqlValue::Integer(query.limit),
                SqlValue::Integer(query.offset),
            ]);
            let rows = self
                .rows(
                    &format!(
                        "SELECT record FROM {table} WHERE {} ORDER BY {order} LIMIT ? OFFSET ?",
                        condition.text
                    ),
                    &params,
                )
                .await?;
            let records = rows
                .iter()
                .map(|r| r.try_get::<_, Value>(0))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((records, total))
        })
    }

    /// The step runs of execution `id`, in the order they were written.
    async fn step_records(&self, id: &str) -> Result<Vec<Value>, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT record FROM step_runs WHERE execution_id = $1 ORDER BY num")
            .await?;
        let rows = client.query(&statement, &[&id]).await?;
        rows.iter()
            .map(|row| {
                let text: &str = row.try_get(0)?;
                let mut record = serde_json::from_str(text).map_err(|source| Error::Corrupt {
                    what: format!("a step run of `{id}`"),
                    source,
                })?;
                restore_step(&mut record);
                Ok(record)
            })
            .collect()
    }

    /// Run one statement that changes rows; how many it changed.
    fn change(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Error> {
        self.block(async {
            let client = self.client().await?;
            Ok(client.execute(sql, params).await?)
        })
    }

    /// The number the one row `sql` returns holds (`RETURNING num`).
    fn returned_num(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<i64, Error> {
        self.block(async {
            let client = self.client().await?;
            Ok(client.query_one(sql, params).await?.try_get(0)?)
        })
    }

    /// The record one statement returns, when it returns one.
    fn record(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Value>, Error> {
        self.block(async {
            let client = self.client().await?;
            let row = client.query_opt(sql, params).await?;
            Ok(row.map(|r| r.try_get::<_, Value>(0)).transpose()?)
        })
    }
}

/// The serving lock on a connection of its own, out of the pool for good; `None` when
/// another session holds it.
async fn take_serving_lock(pool: Pool) -> Result<Option<deadpool_postgres::ClientWrapper>, Error> {
    let client = pool.get().await.map_err(|e| Error::Connect {
        server: "the database".to_owned(),
        reason: crate::ErrorChain(&e).to_string(),
    })?;
    let held: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&SERVING_LOCK])
        .await?
        .try_get(0)?;
    // Taken out of the pool: dropped, it closes (and the lock goes with it).
    Ok(held.then(|| deadpool_postgres::Object::take(client)))
}

/// Check every [`SERVING_CHECK`] that the session holding the serving lock lives; when
/// it has ended, take the lock again on a new one. Another session holding it by then
/// means another server may run on the database: `lost` is set, and the watch ends.
async fn watch_serving_lock(
    pool: Pool,
    mut client: deadpool_postgres::ClientWrapper,
    lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
    server: String,
) {
    loop {
        tokio::time::sleep(SERVING_CHECK).await;
        if client.simple_query("SELECT 1").await.is_ok() {
            continue;
        }
        match take_serving_lock(pool.clone()).await {
            Ok(Some(again)) => {
                tracing::warn!(database = %server, "the serving lock's session ended; taken again");
                client = again;
            }
            // Not reachable now: nobody else can take it meanwhile either.
            Err(e) => {
                tracing::warn!(database = %server, error = %e, "cannot check the serving lock");
            }
            Ok(None) => {
                tracing::error!(database = %server, "another `wasp serve` took the database");
                lost.store(true, std::sync::atomic::Ordering::Release);
                return;
            }
        }
    }
}

/// `url` without its `sslrootcert` (which the client does not read), and that file.
fn take_root_cert(url: &str) -> (String, Option<PathBuf>) {
    let mut found = None;
    let mut take = |part: &str| match part.strip_prefix("sslrootcert=") {
        Some(path) => {
            let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
            found = Some(PathBuf::from(path.as_ref()));
            false
        }
        None => true,
    };
    let rest = match url.split_once('?') {
        Some((base, query)) if url.contains("://") => {
            let query: Vec<&str> = query.split('&').filter(|p| take(p)).collect();
            if query.is_empty() {
                base.to_owned()
            } else {
                format!("{base}?{}", query.join("&"))
            }
        }
        _ if !url.contains("://") => url
            .split_whitespace()
            .filter(|p| take(p))
            .collect::<Vec<_>>()
            .join(" "),
        _ => url.to_owned(),
    };
    (rest, found)
}

/// Whether every host of `config` is this machine (a loopback address, `localhost`, or
/// a socket).
fn on_this_machine(config: &tokio_postgres::Config) -> bool {
    config.get_hosts().iter().all(|host| match host {
        tokio_postgres::config::Host::Tcp(name) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        tokio_postgres::config::Host::Unix(_) => true,
    })
}

/// The TLS the store connects with: the server's certificate checked against the public
/// roots, and the CAs of `root_cert` (PEM) when there is one.
fn tls(root_cert: Option<&Path>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    if let Some(file) = root_cert {
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("cannot read the CA file `{}`: {e}", file.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "the CA file `{}` holds no certificate",
                file.display()
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("a CA of `{}` cannot be used: {e}", file.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// `url` as it may be shown: the server and database, without credentials (or a
/// word that says it does not parse).
pub(super) fn redacted(url: &str) -> String {
    match take_root_cert(url).0.parse::<tokio_postgres::Config>() {
        Ok(config) if at_in_host(&config) => {
            "(a PostgreSQL URL whose password holds an `@`)".to_owned()
        }
        Ok(config) => describe(&config),
        Err(_) => "(a PostgreSQL URL that does not parse)".to_owned(),
    }
}

/// Whether a host of `config` holds an `@`: a password's unencoded `@` read as a host.
fn at_in_host(config: &tokio_postgres::Config) -> bool {
    config
        .get_hosts()
        .iter()
        .any(|h| matches!(h, tokio_postgres::config::Host::Tcp(host) if host.contains('@')))
}

/// The server and database `config` names, without credentials.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config.get_dbname().unwrap_or("(the user's database)");
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    format!("postgres://{user}{host}:{port}/{database}")
}

impl Store for PgStore {
    fn save_playbook(&self, playbook: &PlaybookFields<'_>) -> Result<PlaybookRecord, Error> {
        let now = millis(Utc::now());
        let list = |items: &[String]| Value::from(items.to_vec()).to_string();
        let written = self.change(
            "INSERT INTO playbooks (id, xid, created_at, updated_at, source, name, \
                 description, steps, category, enabled, auto_execute, trigger_conditions, \
                 tags, mitre_tactics, mitre_techniques, required_connector_ids, owner_id, \
                 created_by, updated_by, tenant_id, app_id) \
             VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                 $16, $18, $18, $19, $20) \
             ON CONFLICT (xid) DO UPDATE SET updated_at = excluded.updated_at, \
                 source = excluded.source, name = excluded.name, \
                 description = excluded.description, steps = excluded.steps, \
                 category = excluded.category, enabled = excluded.enabled, \
                 auto_execute = excluded.auto_execute, \
                 trigger_conditions = excluded.trigger_conditions, tags = excluded.tags, \
                 mitre_tactics = excluded.mitre_tactics, \
                 mitre_techniques = excluded.mitre_techniques, \
                 required_connector_ids = excluded.required_connector_ids, \
                 owner_id = excluded.owner_id, updated_by = excluded.updated_by, \
                 deleted_at = NULL, deleted_by = NULL, \
                 schema_version = playbooks.schema_version + $17 \
             WHERE playbooks.tenant_id = excluded.tenant_id \
                 AND (excluded.app_id IS NULL \
                     OR playbooks.app_id IS NOT DISTINCT FROM excluded.app_id)",
            &[
                &format!("pb_{}", ulid::Ulid::new()),
                &playbook.xid,
                &now,
                &playbook.source,
                &playbook.name,
                &playbook.description,
                &playbook.steps.to_string(),
                &playbook.category,
                &playbook.enabled,
                &playbook.auto_execute,
                &Value::from(playbook.trigger_conditions.clone()).to_string(),
                &list(playbook.tags),
                &list(playbook.mitre_tactics),
                &list(playbook.mitre_techniques),
                &list(playbook.required_connector_ids),
                &playbook.owner_id,
                &i64::from(playbook.incompatible),
                &playbook.by,
                &playbook.tenant,
                &playbook.app_id,
            ],
        )?;
        if written == 0 {
            return Err(Error::Taken(playbook.xid.to_owned()));
        }
        self.playbook(playbook.xid, Some(playbook.tenant))?
            .ok_or_else(|| {
                Error::Missing(format!("playbook `{}` vanished after saving", playbook.xid))
            })
    }

    fn delete_playbook(
        &self,
        key: &str,
        tenant: Option<&str>,
        by: Option<&str>,
    ) -> Result<Option<PlaybookRecord>, Error> {
        let Some(playbook) = self.playbook(key, tenant)?.filter(|p| !p.is_deleted) else {
            return Ok(None);
        };
        let changed = self.change(
            "UPDATE playbooks SET deleted_at = $1, updated_at = $1, deleted_by = $3 \
             WHERE num = $2 AND deleted_at IS NULL",
            &[&millis(Utc::now()), &playbook.num, &by],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        self.playbook(&playbook.id, None)
    }

    fn playbooks(&self) -> Result<Vec<PlaybookRecord>, Error> {
        self.block(async {
            let rows = self
                .rows(
                    &format!(
                        "SELECT {PLAYBOOK_COLUMNS} FROM playbooks WHERE deleted_at IS NULL \
                         ORDER BY xid"
                    ),
                    &[],
                )
                .await?;
            rows.iter().map(playbook_row).collect()
        })
    }

    fn playbook(&self, key: &str, tenant: Option<&str>) -> Result<Option<PlaybookRecord>, Error> {
        self.block(async {
            let client = self.client().await?;
            // An XID may be all digits: the XID, then the string id, win over a number.
            let row = client
                .query_opt(
                    &format!(
                        "SELECT {PLAYBOOK_COLUMNS} FROM playbooks \
                         WHERE (id = $1 OR xid = $1 OR num = $2) \
                             AND ($3::text IS NULL OR tenant_id = $3) \
                         ORDER BY xid = $1 DESC, id = $1 DESC LIMIT 1"
                    ),
                    &[&key, &number(key), &tenant],
                )
                .await?;
            row.as_ref().map(playbook_row).transpose()
        })
    }

    fn execution(&self, key: &str) -> Result<Option<ExecutionRow>, Error> {
        self.block(async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    &format!(
                        "SELECT {EXECUTION_COLUMNS} FROM executions e \
                         WHERE e.id = $1 OR e.num = $2"
                    ),
                    &[&key, &number(key)],
                )
                .await?;
            row.as_ref().map(execution_row).transpose()
        })
    }

    fn execution_record(&self, key: &str) -> Result<Option<ExecutionRecord>, Error> {
        self.block(async {
            let client = self.client().await?;
            // The row and the record in one statement, so from one snapshot.
            let Some(found) = client
                .query_opt(
                    &format!(
                        "SELECT {EXECUTION_COLUMNS}, r.record FROM executions e \
                         LEFT JOIN execution_records r ON r.num = e.num \
                         WHERE e.id = $1 OR e.num = $2"
                    ),
                    &[&key, &number(key)],
                )
                .await?
            else {
                return Ok(None);
            };
            drop(client);
            let row = execution_row(&found)?;
            let record: Option<&str> = found.try_get(EXECUTION_COLUMNS.matches(',').count() + 1)?;
            let steps = self.step_records(&row.header.id).await?;
            Ok(Some(match record {
                Some(text) => {
                    let mut record: Value =
                        serde_json::from_str(text).map_err(|source| Error::Corrupt {
                            what: format!("execution `{key}`"),
                            source,
                        })?;
                    record["steps"] = Value::Array(steps);
                    ExecutionRecord::Ended(record)
                }
                None => ExecutionRecord::Unfinished {
                    row: Box::new(row),
                    steps,
                },
            }))
        })
    }

    fn executions(
        &self,
        filter: &ExecutionFilter,
        window: Window,
        count: bool,
    ) -> Result<Page, Error> {
        let condition = render::executions(Dialect::Postgres, filter);
        let order = order(window.sort);
        self.block(async {
            let total = if count {
                Some(self.count("executions e", &condition).await?)
            } else {
                None
            };
            // One row past the page says whether there is a next page.
            let Sql {
                text: condition,
                mut params,
            } = condition;
            params.push(SqlValue::Integer(window.limit.saturating_add(1)));
            params.push(SqlValue::Integer(window.offset));
            let rows = self
                .rows(
                    &format!(
                        "SELECT {EXECUTION_COLUMNS} FROM executions e WHERE {condition} \
                         ORDER BY {} LIMIT ? OFFSET ?",
                        render::execution_order(Dialect::Postgres, filter, order)
                    ),
                    &params,
                )
                .await?;
            let mut rows = rows
                .iter()
                .map(execution_row)
                .collect::<Result<Vec<_>, _>>()?;
            let more = rows.len() as i64 > window.limit;
            rows.truncate(usize::try_from(window.limit).unwrap_or(usize::MAX));
            Ok(Page { rows, total, more })
        })
    }

    fn write(&self, batch: &[Write]) -> Result<Vec<i64>, Error> {
        self.block(async {
            let mut client = self.client().await?;
            let transaction = client.transaction().await?;
            let nums = batch::write(&transaction, batch).await?;
            transaction.commit().await?;
            Ok(nums)
        })
    }

    fn run_stats(&self, xid: &str, tenant: &str) -> Result<RunStats, Error> {
        self.block(async {
            let client = self.client().await?;
            let mut by_status = BTreeMap::new();
            let (mut ended, mut timed, mut total_ms) = (0_i64, 0_i64, 0_i64);
            let rows = client
                .query(
                    "SELECT status, count(*), count(duration_ms), \
                         coalesce(sum(duration_ms), 0)::int8 \
                     FROM executions \
                     WHERE playbook_xid = $1 AND tenant_id = $2 AND completed_at IS NOT NULL \
                     GROUP BY status",
                    &[&xid, &tenant],
                )
                .await?;
            for row in rows {
                let (status, count, with_duration, sum_ms): (String, i64, i64, i64) = (
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                );
                ended += count;
                timed += with_duration;
                total_ms += sum_ms;
                by_status.insert(status, count);
            }
            let running: i64 = client
                .query_one(
                    "SELECT count(*) FROM executions \
                     WHERE playbook_xid = $1 AND tenant_id = $2 AND completed_at IS NULL",
                    &[&xid, &tenant],
                )
                .await?
                .try_get(0)?;
            // The duration at or below which 95% of them ended (nearest rank).
            let p95: Option<i64> = if timed == 0 {
                None
            } else {
                let rank = ((timed as f64) * 0.95).ceil() as i64 - 1;
                client
                    .query_opt(
                        "SELECT duration_ms FROM executions \
                         WHERE playbook_xid = $1 AND tenant_id = $3 \
                             AND completed_at IS NOT NULL AND duration_ms IS NOT NULL \
                         ORDER BY duration_ms LIMIT 1 OFFSET $2",
                        &[&xid, &rank.max(0), &tenant],
                    )
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?
            };
            Ok(RunStats {
                total: ended,
                running,
                by_status,
                mean_duration_ms: (timed > 0)
                    .then(|| (total_ms as f64 / timed as f64).round() as i64),
                p95_duration_ms: p95,
            })
        })
    }

    fn node_states(&self, execution_id: &str) -> Result<Vec<NodeState>, Error> {
        self.block(async {
            let rows = self
                .rows(NODE_STATES_OF, &[SqlValue::Text(execution_id.to_owned())])
                .await?;
            rows.iter().map(node_state).collect()
        })
    }

    fn step_runs(
        &self,
        filter: &StepFilter,
        window: Window,
    ) -> Result<(Vec<StepRunRow>, i64), Error> {
        let (from, columns) = STEP_RUNS;
        self.page(
            render::steps(Dialect::Postgres, filter),
            window,
            from,
            "s.num",
            columns,
            step_run_row,
        )
    }

    fn log_lines(&self, filter: &LogFilter, window: Window) -> Result<(Vec<LogRow>, i64), Error> {
        let (from, columns) = LOG_LINES;
        self.page(
            render::logs(Dialect::Postgres, filter),
            window,
            from,
            "l.num",
            columns,
            log_row,
        )
    }

    fn save_action_run(
        &self,
        num: Option<i64>,
        tenant: &str,
        record: &Value,
    ) -> Result<i64, Error> {
        match num {
            Some(num) => {
                self.change(
                    "UPDATE action_runs SET record = $1 WHERE num = $2",
                    &[&*storable(record), &num],
                )?;
                Ok(num)
            }
            None => self.returned_num(
                "INSERT INTO action_runs (record, tenant_id) VALUES ($1, $2) RETURNING num",
                &[&*storable(record), &tenant],
            ),
        }
    }

    fn action_run(&self, num: i64, tenant: Option<&str>) -> Result<Option<Value>, Error> {
        self.record(
            "SELECT record FROM action_runs WHERE num = $1 \
             AND ($2::text IS NULL OR tenant_id = $2)",
            &[&num, &tenant],
        )
    }

    fn save_app_run(
        &self,
        num: Option<i64>,
        action_run: i64,
        record: &Value,
    ) -> Result<i64, Error> {
        match num {
            Some(num) => {
                self.change(
                    "UPDATE app_runs SET record = $1 WHERE num = $2",
                    &[&*storable(record), &num],
                )?;
                Ok(num)
            }
            None => self.returned_num(
                "INSERT INTO app_runs (action_run, record) VALUES ($1, $2) RETURNING num",
                &[&action_run, &*storable(record)],
            ),
        }
    }

    fn app_runs(
        &self,
        action_run: Option<i64>,
        query: &SoarQuery,
    ) -> Result<(Vec<Value>, i64), Error> {
        self.soar_page(render::SoarRecords::AppRuns(action_run), query)
    }

    fn action_runs(&self, query: &SoarQuery) -> Result<(Vec<Value>, i64), Error> {
        self.soar_page(render::SoarRecords::ActionRuns, query)
    }

    fn app_run(&self, num: i64, tenant: Option<&str>) -> Result<Option<Value>, Error> {
        self.record(
            "SELECT p.record FROM app_runs p JOIN action_runs a ON a.num = p.action_run \
             WHERE p.num = $1 AND ($2::text IS NULL OR a.tenant_id = $2)",
            &[&num, &tenant],
        )
    }

    fn audit_logs(
        &self,
        filter: &AuditFilter,
        window: Window,
        order: AuditOrder,
    ) -> Result<(Vec<AuditRow>, i64), Error> {
        self.page(
            render::audit(Dialect::Postgres, filter),
            window,
            &AUDIT_ROWS,
            audit_key(order),
            AUDIT_COLUMNS,
            audit_row,
        )
    }

    fn check_writable(&self) -> Result<(), Error> {
        self.block(async {
            let client = self.client().await?;
            let writable: bool = client
                .query_one(
                    "SELECT NOT pg_is_in_recovery() \
                         AND current_setting('transaction_read_only') = 'off'",
                    &[],
                )
                .await?
                .try_get(0)?;
            if writable {
                Ok(())
            } else {
                Err(Error::Connect {
                    server: self.server.clone(),
                    reason: "the database takes no writes (a standby, or read-only)".to_owned(),
                })
            }
        })
    }

    fn save_key(&self, key: &ApiKey) -> Result<(), Error> {
        self.change(
            "INSERT INTO api_keys (id, name, tenant, role, secret_sha256, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &key.id,
                &key.name,
                &key.tenant,
                &key.role,
                &key.secret_sha256,
                &millis(key.created_at),
                &key.revoked_at.map(millis),
            ],
        )?;
        Ok(())
    }

    fn key(&self, id: &str) -> Result<Option<ApiKey>, Error> {
        self.block(async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"),
                    &[&id],
                )
                .await?;
            row.as_ref().map(key_row).transpose()
        })
    }

    fn keys(&self) -> Result<Vec<ApiKey>, Error> {
        self.block(async {
            let rows = self
                .rows(
                    &format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"),
                    &[],
                )
                .await?;
            rows.iter().map(key_row).collect()
        })
    }

    fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<bool, Error> {
        Ok(self.change(
            "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&id, &millis(at)],
        )? == 1)
    }

    fn claim_for_serving(&self) -> Result<(), Error> {
        use std::sync::atomic::Ordering;
        if self.serving.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(client) = self.block(take_serving_lock(self.pool.clone()))? else {
            return Err(Error::Connect {
                server: self.server.clone(),
                reason: "another `wasp serve` is using it (one server per database for now)"
                    .to_owned(),
            });
        };
        self.serving.store(true, Ordering::Release);
        // The lock lives as long as its session: watched, and taken back on a new one
        // when the session ends (a restarted server, a dropped connection).
        if let Some(runtime) = &self.runtime {
            runtime.spawn(watch_serving_lock(
                self.pool.clone(),
                client,
                std::sync::Arc::clone(&self.serving_lost),
                self.server.clone(),
            ));
        }
        Ok(())
    }

    fn still_serving(&self) -> bool {
        !self.serving_lost.load(std::sync::atomic::Ordering::Acquire)
    }

    fn interrupt_unfinished(&self) -> Result<Interrupted, Error> {
        let now = Utc::now();
        // Splunk's records keep their times as text, in the shape the SOAR view writes.
        let text = now.to_rfc3339_opts(SecondsFormat::Micros, true);
        self.block(async {
            let mut client = self.client().await?;
            let transaction = client.transaction().await?;
            let executions = transaction
                .execute(
                    "UPDATE executions SET status = 'Failed', \
                         message = 'interrupted by restart', completed_at = $1 \
                     WHERE completed_at IS NULL AND status IN ('Queued', 'Running')",
                    &[&millis(now)],
                )
                .await?;
            let action_runs = transaction
                .execute(
                    "UPDATE action_runs SET record = record || jsonb_build_object( \
                         'status', 'failed', 'message', 'interrupted by restart', \
                         'close_time', $1::text, 'update_time', $1::text) \
                     WHERE record->>'status' IN ('pending', 'running')",
                    &[&text],
                )
                .await?;
            transaction
                .execute(
                    "UPDATE app_runs SET record = record || jsonb_build_object( \
                         'status', 'failed', 'message', 'interrupted by restart', \
                         'end_time', $1::text, 'exception_occured', true) \
                     WHERE record->>'status' = 'running'",
                    &[&text],
                )
                .await?;
            transaction.commit().await?;
            Ok(Interrupted {
                executions: usize::try_from(executions).unwrap_or(usize::MAX),
                action_runs: usize::try_from(action_runs).unwrap_or(usize::MAX),
            })
        })
    }

    fn save_asset(&self, tenant: &str, name: &str, app: &str, spec: &Value) -> Result<bool, Error> {
        let now = millis(Utc::now());
        let written = self.change(
            "INSERT INTO assets (name, app, spec, created_at, updated_at, tenant_id) \
             VALUES ($1, $2, $3, $4, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET app = excluded.app, spec = excluded.spec, \
                 updated_at = excluded.updated_at \
             WHERE assets.tenant_id = excluded.tenant_id",
            &[&name, &app, &spec.to_string(), &now, &tenant],
        )?;
        Ok(written > 0)
    }

    fn delete_asset(&self, tenant: &str, name: &str) -> Result<bool, Error> {
        Ok(self.change(
            "DELETE FROM assets WHERE name = $1 AND tenant_id = $2",
            &[&name, &tenant],
        )? > 0)
    }

    fn assets(&self) -> Result<Vec<(String, String, Value)>, Error> {
        self.block(async {
            let rows = self
                .rows(
                    "SELECT tenant_id, name, spec FROM assets ORDER BY name",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    let (tenant, name, spec): (String, String, &str) =
                        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
                    let spec = serde_json::from_str(spec).map_err(|source| Error::Corrupt {
                        what: format!("asset `{name}`: the stored definition is not JSON"),
                        source,
                    })?;
                    Ok((tenant, name, spec))
                })
                .collect()
        })
    }
}

#[cfg(test)]
#[path = "../../../../tests/support/postgres.rs"]
mod cluster;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::conformance::Fixture;
    use crate::store::testing::execution;
    use crate::trace::{Event, ExecutionStatus, StepRun};

    /// The store's tests (`store::conformance`) on a new database of the test
    /// process's cluster.
    fn fixture() -> Option<Fixture> {
        let cluster = super::cluster::cluster()?;
        let url = cluster.create_database();
        let (again, outside) = (url.clone(), url.clone());
        Some(Fixture {
            store: Arc::new(PgStore::open(&url).unwrap()),
            dialect: Dialect::Postgres,
            reopen: Box::new(move || Arc::new(PgStore::open(&again).unwrap())),
            sql: Box::new(move |sql| cluster.psql(&outside, sql)),
            _keep: Box::new(()),
        })
    }

    crate::store::conformance::all_backend_tests!(fixture);

    #[test]
    fn a_step_run_written_again_stays_one_row() {
        use crate::trace::{Capture, StepReport};
        let Some(f) = fixture() else { return };
        let now = Utc::now();
        let run = StepRun {
            node: "s".to_owned(),
            app: "transform".to_owned(),
            action: "join".to_owned(),
            iteration: Some(0),
            attempt: 1,
            input: None,
            report: StepReport {
                logs: ["one", "two"]
                    .map(|message| crate::trace::LogLine {
                        ts: now.to_rfc3339(),
                        level: crate::trace::LogLevel::Info,
                        message: message.to_owned(),
                        fields: Vec::new(),
                    })
                    .to_vec(),
                ..StepReport::success(json_null())
            },
            capture: Capture::default(),
            started_at: now,
            child: None,
        };
        let mut ended = execution("ex_twice", ExecutionStatus::Completed, now);
        ended.steps = vec![run.clone()];
        let started = crate::store::NewExecution::running(&ended);
        let step_ended = Write::Event(Event::StepEnded {
            execution_id: "ex_twice".to_owned(),
            owner: Arc::default(),
            node: "s".to_owned(),
            iteration: Some(0),
            attempt: 1,
            status: run.report.status,
            duration_us: 0,
            logs: Vec::new(),
            run: Some(Arc::new(run)),
        });
        // Twice in one batch, too: one row, and its lines once.
        f.store
            .write(&[
                Write::Start(started),
                step_ended.clone(),
                step_ended.clone(),
            ])
            .unwrap();
        // The same step again (a retried write), then with the record.
        f.store.write(&[step_ended]).unwrap();
        f.store.write(&[Write::Finish(Box::new(ended))]).unwrap();
        assert_eq!(
            f.sql("SELECT count(*) FROM step_runs WHERE execution_id = 'ex_twice'"),
            "1"
        );
        assert_eq!(
            f.sql("SELECT string_agg(message, ',' ORDER BY num) FROM log_lines"),
            "one,two"
        );
    }

    #[test]
    fn a_batch_goes_in_statements_of_a_bounded_size() {
        let mb = 1 << 20;
        assert_eq!(batch::chunks(&[]), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(
            batch::chunks(&[10, 20, 30]),
            vec![std::ops::Range { start: 0, end: 3 }]
        );
        // A record bigger than the bound goes alone; the rest fill up to it.
        assert_eq!(
            batch::chunks(&[100 * mb, 40 * mb, 20 * mb, 10 * mb, 50 * mb]),
            [0..1, 1..3, 3..5]
        );
    }

    #[test]
    fn a_location_is_shown_without_its_password() {
        use crate::store::Location;
        let shown = |text: &str| text.parse::<Location>().unwrap().to_string();
        assert_eq!(
            "wasp.db".parse::<Location>().unwrap(),
            Location::Sqlite("wasp.db".into())
        );
        assert_eq!(
            shown("postgres://wasp:hunter2@db.example:6432/wasp"),
            "postgres://wasp@db.example:6432/wasp"
        );
        assert_eq!(
            shown("host=db user=wasp password=hunter2 dbname=wasp"),
            "postgres://wasp@db:5432/wasp"
        );
        let unencoded = shown("postgres://wasp:hun@ter2@db/wasp");
        assert!(!unencoded.contains("ter2"), "{unencoded}");
        assert!(
            !format!(
                "{:?}",
                "postgres://w:hunter2@db/x".parse::<Location>().unwrap()
            )
            .contains("hunter2")
        );
        let refused = PgStore::open("postgres://wasp:hun@ter2@db/wasp")
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("%40") && !refused.contains("ter2"),
            "{refused}"
        );
    }

    #[test]
    fn tls_is_verified_against_the_ca_named_and_off_on_this_machine_unless_asked_for() {
        let Some(cluster) = super::cluster::cluster() else {
            return;
        };
        let url = cluster.create_database();
        let database = url.rsplit('/').next().unwrap().to_owned();
        // Connections of the store (application `wasp`) to this database over TLS.
        let over_tls = || {
            cluster.psql(
                &url,
                &format!(
                    "SELECT count(*) FILTER (WHERE s.ssl) || '/' || count(*) \
                     FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                     WHERE a.application_name = 'wasp' AND a.datname = '{database}'"
                ),
            )
        };
        // On this machine, without sslmode: plain text.
        let plain = PgStore::open(&url).unwrap();
        assert_eq!(over_tls(), "0/1");
        drop(plain);
        // Asked for, with the CA that signed the server's certificate: TLS.
        let ca = cluster.ca_file();
        let with_ca = format!(
            "{url}?sslmode=require&sslrootcert={}",
            percent_encoding::utf8_percent_encode(
                ca.to_str().unwrap(),
                percent_encoding::NON_ALPHANUMERIC
            )
        );
        assert!(
            !with_ca
                .parse::<crate::store::Location>()
                .unwrap()
                .to_string()
                .contains("sslrootcert")
        );
        let secure = PgStore::open(&with_ca).unwrap();
        assert_eq!(over_tls(), "1/1");
        drop(secure);
        // Without the CA, the server's certificate is not trusted: refused, and said.
        let refused = PgStore::open(&format!("{url}?sslmode=require"))
            .unwrap_err()
            .to_string();
        assert!(refused.contains("certificate"), "{refused}");
        let missing = PgStore::open(&format!("{url}?sslmode=require&sslrootcert=/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("cannot read the CA file `/nonexistent`"),
            "{missing}"
        );
        // libpq's pairs too.
        let (rest, file) = take_root_cert("host=db sslrootcert=/etc/ca.pem dbname=wasp");
        assert_eq!(rest, "host=db dbname=wasp");
        assert_eq!(file, Some(PathBuf::from("/etc/ca.pem")));
    }

    fn json_null() -> Value {
        Value::Null
    }

    #[test]
    fn a_database_from_a_newer_wasp_is_refused_and_two_openings_migrate_once() {
        let Some(cluster) = super::cluster::cluster() else {
            return;
        };
        let url = cluster.create_database();
        // Two stores opening a new database at once: one migrates, the other waits
        // and finds it done.
        let openings: Vec<_> = (0..2)
            .map(|_| {
                let url = url.clone();
                std::thread::spawn(move || PgStore::open(&url).map(|_| ()))
            })
            .collect();
        for opening in openings {
            opening.join().unwrap().unwrap();
        }
        assert_eq!(
            cluster.psql(
                &url,
                "SELECT string_agg(version::text, ',') FROM wasp_schema"
            ),
            "1"
        );
        cluster.psql(&url, "INSERT INTO wasp_schema VALUES (99, 0)");
        let error = PgStore::open(&url).unwrap_err().to_string();
        assert!(error.contains("its schema is version 99"), "{error}");
        // Credentials never appear in what the store says about itself.
        let error = PgStore::open(&format!(
            "postgres://wasp:hunter2@127.0.0.1:1/{}",
            url.rsplit('/').next().unwrap()
        ))
        .unwrap_err()
        .to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("127.0.0.1:1"), "{error}");
    }
}
