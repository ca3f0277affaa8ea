//! `wasp keys`: make, list and revoke API keys in a database, for a server on it to
//! accept (a running server sees a new key at once, and a revocation within 10 s).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{DEFAULT_DB, Failure, OutputArg, OutputFormat, for_terminal, open_store, print_json};
use crate::service::keys::{DEFAULT_TENANT, create_key};

#[derive(Debug, Subcommand)]
pub(super) enum KeysCommand {
    /// Make a key with a role, and print its token (shown this once, stored hashed).
    Create(CreateArgs),
    /// List the keys: id, name, tenant, role, when made and revoked (never a secret).
    List(ListArgs),
    /// Revoke a key: servers refuse it from now on.
    Revoke(RevokeArgs),
    /// Print a key's signing secret, for a client that signs requests (ThreatConnect's
    /// HMAC, Huawei Cloud's AK/SK): the access id is the key's id.
    SigningSecret(SigningSecretArgs),
}

#[derive(Debug, Args)]
pub(super) struct SigningSecretArgs {
    /// The key's id (`key_…`).
    id: String,

    /// The server's signing key file (`wasp serve --key-file`, which makes it).
    #[arg(long, env = crate::env::KEY_FILE, value_name = "FILE")]
    key_file: PathBuf,

    /// The database: a SQLite file, or a PostgreSQL URL.
    #[arg(long, env = crate::env::DB, hide_env_values = true, default_value = DEFAULT_DB, value_name = "FILE|URL")]
    db: crate::store::Location,
}

#[derive(Debug, Args)]
pub(super) struct CreateArgs {
    /// What the key may do: `viewer` (read), `operator` (also run, kill, change
    /// playbooks), `admin` (also assets and keys).
    #[arg(long)]
    role: String,

    /// The tenant it acts in: what it makes is that tenant's, and it sees only that
    /// tenant's records.
    #[arg(long, default_value = DEFAULT_TENANT)]
    tenant: String,

    /// What it is for, e.g. `ci` or `splunk-sync`.
    #[arg(long, default_value = "key")]
    name: String,

    /// The database: a SQLite file, or a PostgreSQL URL.
    #[arg(long, env = crate::env::DB, hide_env_values = true, default_value = DEFAULT_DB, value_name = "FILE|URL")]
    db: crate::store::Location,
}

#[derive(Debug, Args)]
pub(super) struct ListArgs {
    /// The database: a SQLite file, or a PostgreSQL URL.
    #[arg(long, env = crate::env::DB, hide_env_values = true, default_value = DEFAULT_DB, value_name = "FILE|URL")]
    db: crate::store::Location,

    #[command(flatten)]
    output: OutputArg,
}

#[derive(Debug, Args)]
pub(super) struct RevokeArgs {
    /// The key's id (`key_…`).
    id: String,

    /// The database: a SQLite file, or a PostgreSQL URL.
    #[arg(long, env = crate::env::DB, hide_env_values = true, default_value = DEFAULT_DB, value_name = "FILE|URL")]
    db: crate::store::Location,
}

/// Run `command`.
pub(super) fn run(command: &KeysCommand) -> Result<ExitCode, Failure> {
    let failed = |e: crate::service::Error| {
        if e.is_internal() {
            Failure::Internal(e.to_string())
        } else {
            Failure::Usage(e.to_string())
        }
    };
    match command {
        KeysCommand::Create(args) => {
            let store = open_store(&args.db)?;
            let (key, token) =
                create_key(&*store, &args.name, &args.tenant, &args.role).map_err(failed)?;
            eprintln!(
                "made key `{}` ({}, tenant `{}`): its token follows, shown this once",
                key.id,
                key.role,
                for_terminal(&key.tenant)
            );
            println!("{token}");
            eprintln!(
                "keys are enforced by a server started with --token (the bootstrap admin); \
                 one without refuses to start while keys exist"
            );
        }
        KeysCommand::List(args) => {
            let keys = open_store(&args.db)?
                .keys()
                .map_err(|e| Failure::Internal(e.to_string()))?;
            match args.output.format() {
                OutputFormat::Json => print_json(&keys),
                OutputFormat::Text => {
                    for key in &keys {
                        let state = key
                            .revoked_at
                            .map_or_else(|| "active".to_owned(), |at| format!("revoked {at}"));
                        println!(
                            "{}  {:<8}  {:<10}  {}  {}",
                            key.id,
                            key.role,
                            for_terminal(&key.tenant),
                            state,
                            for_terminal(&key.name)
                        );
                    }
                }
            }
        }
        KeysCommand::Revoke(args) => {
            let store = open_store(&args.db)?;
            let revoked = store
                .revoke_key(&args.id, chrono::Utc::now())
                .map_err(|e| Failure::Internal(e.to_string()))?;
            if !revoked {
                let known = store
                    .key(&args.id)
                    .map_err(|e| Failure::Internal(e.to_string()))?;
                return Err(Failure::Usage(match known {
                    Some(_) => format!("key `{}` is revoked already", for_terminal(&args.id)),
                    None => format!("there is no key `{}`", for_terminal(&args.id)),
                }));
            }
            println!("revoked key `{}`", args.id);
        }
        KeysCommand::SigningSecret(args) => {
            let key = open_store(&args.db)?
                .key(&args.id)
                .map_err(|e| Failure::Internal(e.to_string()))?
                .filter(|key| key.revoked_at.is_none())
                .ok_or_else(|| {
                    Failure::Usage(format!(
                        "there is no key `{}` that is not revoked",
                        for_terminal(&args.id)
                    ))
                })?;
            let signing = crate::service::keys::SigningKey::load(&args.key_file).map_err(|e| {
                Failure::Usage(format!(
                    "{e} (`wasp serve --key-file {}` makes the file)",
                    args.key_file.display()
                ))
            })?;
            eprintln!(
                "the signing secret of key `{}` follows: sign with it as the secret key, the \
                 key's id as the access id",
                key.id
            );
            println!("{}", signing.secret_of(&key.id));
        }
    }
    Ok(ExitCode::SUCCESS)
}
