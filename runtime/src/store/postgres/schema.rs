//! The PostgreSQL store's tables, as the migrations that built them.
//!
//! The first migration is the SQLite schema as it stands after its fourteenth (tenants
//! and applications included), ported once: the same tables and columns, so that one
//! set of queries (`super::super::render`, `super::super::stored`) reads both. What
//! differs is what PostgreSQL does better or needs: identity columns, booleans, step
//! runs keyed by what makes them one (so a repeated write changes nothing) and indexed
//! by execution (no ranges of numbers to keep), Splunk's records as `jsonb` (compared
//! and sorted as JSON). Records that wasp serves as written stay text: `jsonb` would
//! refuse a `\u0000` that an app may well put in its output. Text sorts and compares
//! byte by byte (`COLLATE "C"`), as in SQLite, whatever the database's locale.

/// Each migration, in order; `wasp_schema` lists those applied. (Later changes are new
/// entries, never edits.)
pub(super) const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE playbooks (
    num BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT COLLATE "C" NOT NULL UNIQUE,
    xid TEXT COLLATE "C" NOT NULL UNIQUE,
    tenant_id TEXT COLLATE "C" NOT NULL DEFAULT 'default',
    app_id TEXT COLLATE "C",
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    created_by TEXT COLLATE "C",
    updated_by TEXT COLLATE "C",
    deleted_at BIGINT,
    deleted_by TEXT COLLATE "C",
    source TEXT COLLATE "C" NOT NULL,
    schema_version BIGINT NOT NULL DEFAULT 1,
    name TEXT COLLATE "C" NOT NULL,
    description TEXT COLLATE "C" NOT NULL DEFAULT '',
    category TEXT COLLATE "C",
    trigger_conditions TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    auto_execute BOOLEAN NOT NULL DEFAULT FALSE,
    mitre_tactics TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    mitre_techniques TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    steps TEXT COLLATE "C" NOT NULL,
    required_connector_ids TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    owner_id TEXT COLLATE "C",
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    run_stats TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    tags TEXT COLLATE "C" NOT NULL DEFAULT '[]'
);
CREATE TABLE executions (
    num BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT COLLATE "C" NOT NULL UNIQUE,
    parent_id TEXT COLLATE "C",
    replay_of TEXT COLLATE "C",
    playbook_num BIGINT,
    playbook_xid TEXT COLLATE "C" NOT NULL,
    playbook_name TEXT COLLATE "C" NOT NULL,
    trigger_type TEXT COLLATE "C" NOT NULL,
    log_level TEXT COLLATE "C" NOT NULL,
    status TEXT COLLATE "C" NOT NULL,
    message TEXT COLLATE "C",
    queued_at BIGINT NOT NULL,
    started_at BIGINT,
    completed_at BIGINT,
    duration_ms BIGINT,
    tenant_id TEXT COLLATE "C" NOT NULL DEFAULT 'default',
    app_id TEXT COLLATE "C"
);
CREATE INDEX executions_completed_at ON executions (completed_at)
    WHERE completed_at IS NOT NULL;
CREATE INDEX executions_queued_at ON executions (queued_at);
CREATE INDEX executions_playbook_xid ON executions (playbook_xid, num);
CREATE INDEX executions_parent ON executions (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX executions_replay_of ON executions (replay_of) WHERE replay_of IS NOT NULL;
CREATE INDEX executions_unfinished ON executions (status) WHERE completed_at IS NULL;
CREATE INDEX executions_tenant ON executions (tenant_id, num);
-- The whole record of an ended execution, without its step runs.
CREATE TABLE execution_records (
    num BIGINT PRIMARY KEY,
    record TEXT COLLATE "C" NOT NULL
);
CREATE TABLE step_runs (
    num BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id TEXT COLLATE "C" NOT NULL,
    node TEXT COLLATE "C" NOT NULL,
    app TEXT COLLATE "C" NOT NULL,
    action TEXT COLLATE "C" NOT NULL,
    iteration BIGINT,
    attempt BIGINT NOT NULL,
    status TEXT COLLATE "C" NOT NULL,
    error_kind TEXT COLLATE "C",
    error_message TEXT COLLATE "C",
    started_at BIGINT,
    duration_us BIGINT NOT NULL,
    child_id TEXT COLLATE "C",
    record TEXT COLLATE "C" NOT NULL
);
-- A step run is one per execution, node, iteration and attempt: written again (while
-- its execution runs, then with its record), it stays the one row.
CREATE UNIQUE INDEX step_runs_key
    ON step_runs (execution_id, node, (coalesce(iteration, -1)), attempt);
CREATE TABLE log_lines (
    num BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id TEXT COLLATE "C" NOT NULL,
    step_num BIGINT NOT NULL,
    node TEXT COLLATE "C" NOT NULL,
    ts TEXT COLLATE "C" NOT NULL,
    level TEXT COLLATE "C" NOT NULL,
    message TEXT COLLATE "C" NOT NULL,
    fields TEXT COLLATE "C"
);
CREATE INDEX log_lines_execution ON log_lines (execution_id, step_num);
CREATE TABLE node_states (
    execution_id TEXT COLLATE "C" NOT NULL,
    node TEXT COLLATE "C" NOT NULL,
    status TEXT COLLATE "C" NOT NULL,
    started_at BIGINT,
    ended_at BIGINT,
    duration_us BIGINT,
    pathway TEXT COLLATE "C",
    error TEXT COLLATE "C",
    iterations BIGINT,
    succeeded BIGINT,
    PRIMARY KEY (execution_id, node)
);
CREATE TABLE action_runs (
    num BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT COLLATE "C" NOT NULL DEFAULT 'default',
    record JSONB NOT NULL
);
CREATE TABLE app_runs (
    num BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action_run BIGINT NOT NULL,
    record JSONB NOT NULL
);
CREATE INDEX app_runs_action_run ON app_runs (action_run, num);
-- Assets created through the API; a secret is kept as its reference, never a value.
CREATE TABLE assets (
    name TEXT COLLATE "C" PRIMARY KEY,
    tenant_id TEXT COLLATE "C" NOT NULL DEFAULT 'default',
    app TEXT COLLATE "C" NOT NULL,
    spec TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- API keys: who they are, and the SHA-256 of their secret (never the secret).
CREATE TABLE api_keys (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL,
    tenant TEXT COLLATE "C" NOT NULL,
    role TEXT COLLATE "C" NOT NULL,
    secret_sha256 TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
"#];
