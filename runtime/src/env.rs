//! Every environment variable wasp reads, in one place.
//!
//! Precedence everywhere: command-line flag, then environment variable, then default.

/// The directory of app components (`--apps`).
pub const APPS: &str = "WASP_APPS";
/// Cargo's target directory: without `--apps` or `WASP_APPS`, the apps are looked for in
/// its `apps` directory, where the build puts the example apps (else in `target/apps`).
pub const CARGO_TARGET_DIR: &str = "CARGO_TARGET_DIR";
/// Where compiled components are cached (`--cache-dir`).
pub const CACHE_DIR: &str = "WASP_CACHE_DIR";
/// The diagnostics filter for wasp's own logs on stderr, in `tracing`'s
/// `EnvFilter` syntax (e.g. `wasp_runtime=debug`). Default: `warn`.
pub const LOG: &str = "WASP_LOG";
/// The bearer token `wasp serve` requires (`--token`).
pub const API_TOKEN: &str = "WASP_API_TOKEN";
/// Host names `wasp serve` answers to besides `localhost` and IP addresses,
/// comma-separated (`--allowed-host`).
pub const ALLOWED_HOSTS: &str = "WASP_ALLOWED_HOSTS";
/// The address clients reach `wasp serve` by, for the links answers carry
/// (`--public-url`).
pub const PUBLIC_URL: &str = "WASP_PUBLIC_URL";
/// The database file (`--db`).
pub const DB: &str = "WASP_DB";
/// The directory whose files assets created through the API may name as secrets
/// (`wasp serve --secrets-dir`).
pub const SECRETS_DIR: &str = "WASP_SECRETS_DIR";
/// The server's signing key file (`--key-file`): API keys' signing secrets derive
/// from it.
pub const KEY_FILE: &str = "WASP_KEY_FILE";
/// The OpenTelemetry variables that switch trace export on (read by the SDK too, with
/// the rest of the standard `OTEL_*`: `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`).
pub const OTLP_ENDPOINTS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];
/// The service name exported traces carry (`wasp` without it).
pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// The key that signs the JWTs `wasp serve` accepts (`--jwt-key`).
pub const JWT_KEY: &str = "WASP_JWT_KEY";
/// The prefix of the environment variables assets created through the API may name as
/// secrets: the API cannot read the rest of the server's environment.
pub const SECRET_ENV_PREFIX: &str = "WASP_SECRET_";
