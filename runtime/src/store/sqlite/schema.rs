//! The SQLite store's tables, as the migrations that built them.

/// Each migration, in order; `PRAGMA user_version` counts those applied. (The first
/// is the schema as first released; later changes are new entries, never edits.)
pub(super) const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE playbooks (
    num INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    xid TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL DEFAULT 'default',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    source TEXT NOT NULL,
    deleted_at INTEGER,
    schema_version INTEGER NOT NULL DEFAULT 1,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    category TEXT,
    trigger_conditions TEXT NOT NULL DEFAULT '[]',
    auto_execute INTEGER NOT NULL DEFAULT 0,
    mitre_tactics TEXT NOT NULL DEFAULT '[]',
    mitre_techniques TEXT NOT NULL DEFAULT '[]',
    steps TEXT NOT NULL,
    required_connector_ids TEXT NOT NULL DEFAULT '[]',
    owner_id TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    last_run_at INTEGER,
    last_run_id TEXT,
    run_stats TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '[]'
);
-- Narrow, so that lists and counts over many executions read few pages; the whole
-- record of an ended execution is in execution_records.
CREATE TABLE executions (
    num INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    parent_id TEXT,
    replay_of TEXT,
    playbook_num INTEGER,
    playbook_xid TEXT NOT NULL,
    playbook_name TEXT NOT NULL,
    trigger_type TEXT NOT NULL,
    log_level TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT,
    queued_at INTEGER NOT NULL,
    started_at INTEGER,
    completed_at INTEGER,
    duration_ms INTEGER
);
CREATE INDEX executions_completed_at ON executions (completed_at);
CREATE INDEX executions_queued_at ON executions (queued_at);
CREATE INDEX executions_playbook_xid ON executions (playbook_xid, num);
CREATE INDEX executions_playbook_num ON executions (playbook_num, num);
CREATE INDEX executions_status ON executions (status, num);
CREATE INDEX executions_parent ON executions (parent_id);
CREATE INDEX executions_replay_of ON executions (replay_of);
CREATE TABLE execution_records (
    execution_id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE step_runs (
    num INTEGER PRIMARY KEY,
    execution_id TEXT NOT NULL,
    node TEXT NOT NULL,
    app TEXT NOT NULL,
    action TEXT NOT NULL,
    iteration INTEGER,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    error_kind TEXT,
    error_message TEXT,
    started_at INTEGER,
    duration_us INTEGER NOT NULL,
    child_id TEXT,
    record TEXT NOT NULL
);
CREATE INDEX step_runs_execution ON step_runs (execution_id, node);
CREATE TABLE log_lines (
    num INTEGER PRIMARY KEY,
    execution_id TEXT NOT NULL,
    step_num INTEGER NOT NULL,
    node TEXT NOT NULL,
    ts TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    fields TEXT
);
CREATE INDEX log_lines_execution ON log_lines (execution_id, step_num);
CREATE TABLE node_states (
    execution_id TEXT NOT NULL,
    node TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at INTEGER,
    ended_at INTEGER,
    duration_us INTEGER,
    pathway TEXT,
    error TEXT,
    iterations INTEGER,
    PRIMARY KEY (execution_id, node)
);
CREATE TABLE action_runs (
    num INTEGER PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE app_runs (
    num INTEGER PRIMARY KEY,
    action_run INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX app_runs_action_run ON app_runs (action_run, num);
-- SecMaster's audit log rows: a PLAYBOOK instance per execution, an APP instance per
-- step run, in SecMaster's status and trigger words. A child execution reports the
-- trigger type of the execution that started it.
CREATE VIEW audit_logs AS
SELECT 'PLAYBOOK' AS instance_type,
    e.playbook_xid AS action_id,
    e.playbook_name AS action_name,
    e.id AS instance_id,
    e.parent_id AS parent_instance_id,
    upper(e.log_level) AS log_level,
    coalesce(json_extract(r.record, '$.trigger'), '') AS input,
    '' AS output,
    coalesce(e.message, '') AS error_msg,
    e.started_at AS start_time,
    e.completed_at AS end_time,
    CASE e.status
        WHEN 'Queued' THEN 'CREATED'
        WHEN 'Running' THEN 'RUNNING'
        WHEN 'Completed' THEN 'FINISHED'
        WHEN 'Killed' THEN 'TERMINATED'
        ELSE 'FAILED' END AS status,
    CASE coalesce(p.trigger_type, e.trigger_type)
        WHEN 'WEBHOOK' THEN 'EVENT'
        WHEN 'PLAYBOOK' THEN 'MANUAL'
        ELSE coalesce(p.trigger_type, e.trigger_type) END AS trigger_type
FROM executions e
    LEFT JOIN execution_records r ON r.execution_id = e.id
    LEFT JOIN executions p ON p.id = e.parent_id
UNION ALL
SELECT 'APP',
    s.app,
    s.action,
    'sr_' || s.num,
    s.execution_id,
    upper(e.log_level),
    coalesce(json_extract(s.record, '$.input'), ''),
    coalesce(json_extract(s.record, '$.report.output'), ''),
    coalesce(s.error_message, ''),
    s.started_at,
    s.started_at + s.duration_us / 1000,
    CASE s.status
        WHEN 'Succeeded' THEN 'FINISHED'
        WHEN 'Killed' THEN 'TERMINATED'
        ELSE 'FAILED' END,
    CASE coalesce(p.trigger_type, e.trigger_type)
        WHEN 'WEBHOOK' THEN 'EVENT'
        WHEN 'PLAYBOOK' THEN 'MANUAL'
        ELSE coalesce(p.trigger_type, e.trigger_type) END
FROM step_runs s JOIN executions e ON e.id = s.execution_id
    LEFT JOIN executions p ON p.id = e.parent_id;
",
    r"
-- Most executions have no parent, replay nothing and have not ended when they start:
-- index only those that do, so that recording a start touches fewer pages. (A query
-- comparing the column still uses the index: the comparison implies NOT NULL.)
DROP INDEX executions_completed_at;
CREATE INDEX executions_completed_at ON executions (completed_at)
    WHERE completed_at IS NOT NULL;
DROP INDEX executions_parent;
CREATE INDEX executions_parent ON executions (parent_id) WHERE parent_id IS NOT NULL;
DROP INDEX executions_replay_of;
CREATE INDEX executions_replay_of ON executions (replay_of) WHERE replay_of IS NOT NULL;
",
    r"
-- Assets created through the API. A secret is kept as its reference (`env:` or
-- `file:`), never as a value: the spec column holds what the API shows.
CREATE TABLE assets (
    name TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
",
    r"
-- Each ended execution writes its record in the same batch as its row: key the record
-- by the row's number, one B-tree where a text key took two (the table and its index).
CREATE TABLE records_by_num (num INTEGER PRIMARY KEY, record TEXT NOT NULL);
INSERT INTO records_by_num (num, record)
    SELECT e.num, r.record FROM execution_records r JOIN executions e ON e.id = r.execution_id;
DROP VIEW audit_logs;
DROP TABLE execution_records;
ALTER TABLE records_by_num RENAME TO execution_records;
CREATE VIEW audit_logs AS
SELECT 'PLAYBOOK' AS instance_type,
    e.playbook_xid AS action_id,
    e.playbook_name AS action_name,
    e.id AS instance_id,
    e.parent_id AS parent_instance_id,
    upper(e.log_level) AS log_level,
    coalesce(json_extract(r.record, '$.trigger'), '') AS input,
    '' AS output,
    coalesce(e.message, '') AS error_msg,
    e.started_at AS start_time,
    e.completed_at AS end_time,
    CASE e.status
        WHEN 'Queued' THEN 'CREATED'
        WHEN 'Running' THEN 'RUNNING'
        WHEN 'Completed' THEN 'FINISHED'
        WHEN 'Killed' THEN 'TERMINATED'
        ELSE 'FAILED' END AS status,
    CASE coalesce(p.trigger_type, e.trigger_type)
        WHEN 'WEBHOOK' THEN 'EVENT'
        WHEN 'PLAYBOOK' THEN 'MANUAL'
        ELSE coalesce(p.trigger_type, e.trigger_type) END AS trigger_type
FROM executions e
    LEFT JOIN execution_records r ON r.num = e.num
    LEFT JOIN executions p ON p.id = e.parent_id
UNION ALL
SELECT 'APP',
    s.app,
    s.action,
    'sr_' || s.num,
    s.execution_id,
    upper(e.log_level),
    coalesce(json_extract(s.record, '$.input'), ''),
    coalesce(json_extract(s.record, '$.report.output'), ''),
    coalesce(s.error_message, ''),
    s.started_at,
    s.started_at + s.duration_us / 1000,
    CASE s.status
        WHEN 'Succeeded' THEN 'FINISHED'
        WHEN 'Killed' THEN 'TERMINATED'
        ELSE 'FAILED' END,
    CASE coalesce(p.trigger_type, e.trigger_type)
        WHEN 'WEBHOOK' THEN 'EVENT'
        WHEN 'PLAYBOOK' THEN 'MANUAL'
        ELSE coalesce(p.trigger_type, e.trigger_type) END
FROM step_runs s JOIN executions e ON e.id = s.execution_id
    LEFT JOIN executions p ON p.id = e.parent_id;
-- A playbook's last run is read from the executions (see PLAYBOOK_COLUMNS).
ALTER TABLE playbooks DROP COLUMN last_run_at;
ALTER TABLE playbooks DROP COLUMN last_run_id;
",
    r"
-- Every index is one more B-tree each stored execution writes and each commit copies a
-- page of. `playbookId` is answered through the playbook's XID and its index. A page of
-- `queueTime` or `status` reads the executions newest first (TQL compares a status
-- without regard to case, which a plain index cannot serve), so only counts used those
-- indexes. What a restart must find, the unfinished executions, keeps an index of its
-- own, which an execution leaves when it ends (and one stored at its end never enters).
DROP INDEX executions_playbook_num;
DROP INDEX executions_queued_at;
DROP INDEX executions_status;
CREATE INDEX executions_unfinished ON executions (status) WHERE completed_at IS NULL;
",
    r"
-- An execution's step runs are written together, one after the other: its record keeps
-- the first and the last number, and finding them reads that range of step_runs. Their
-- index by execution was three more B-tree entries for every execution of three steps.
ALTER TABLE execution_records ADD COLUMN first_step INTEGER;
ALTER TABLE execution_records ADD COLUMN last_step INTEGER;
UPDATE execution_records SET (first_step, last_step) = (
    SELECT min(s.num), max(s.num)
    FROM executions e JOIN step_runs s ON s.execution_id = e.id
    WHERE e.num = execution_records.num);
DROP INDEX step_runs_execution;
",
    r"
-- The audit rows are read through AUDIT_ROWS, in wasp's words: SecMaster's words for
-- statuses and triggers are the API's to say.
DROP VIEW audit_logs;
",
    r"
-- How many iterations of a for_each node succeeded, for the page's `3 of 4`.
ALTER TABLE node_states ADD COLUMN succeeded INTEGER;
",
    r"
-- The step runs written while their execution ran, so that they can be read before it
-- ends (and are kept if the process dies). They keep their numbers when it ends; its
-- record's range holds the others, written together then. `early_steps` counts them.
CREATE TABLE early_steps (
    execution_id TEXT NOT NULL,
    step_num INTEGER NOT NULL,
    PRIMARY KEY (execution_id, step_num)
) WITHOUT ROWID;
ALTER TABLE executions ADD COLUMN early_steps INTEGER;
",
    r"
-- API keys: who they are, and the SHA-256 of their secret (never the secret).
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    tenant TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
",
    r"
-- Who soft-deleted a playbook (seed 003), beside who made and last changed it.
ALTER TABLE playbooks ADD COLUMN deleted_by TEXT;
",
    r"
-- Tenants: every execution, Splunk action run and API-defined asset belongs to one
-- (step runs, log lines and node states to their execution's, app runs to their action
-- run's), and every read is filtered by it. Most rows are the default tenant's: only
-- the others are indexed, and a read for the default tenant scans newest first.
ALTER TABLE executions ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX executions_tenant ON executions (tenant_id, num) WHERE tenant_id <> 'default';
ALTER TABLE action_runs ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE assets ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
",
    r"
-- The application a playbook was made for (seed 003's app_id): stamped from a JWT minted
-- for one, and then the playbook is that application's to see.
ALTER TABLE playbooks ADD COLUMN app_id TEXT;
",
    r"
-- An execution's application is its playbook's, for callers that act for one.
ALTER TABLE executions ADD COLUMN app_id TEXT;
",
];
