//! The `wasp` binary: installs the diagnostics subscriber and hands over to [`cli`].

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use wasp_runtime::{cli, env};

/// Many threads allocate at once here (Tokio's workers, which run the steps, the store's
/// writes and the HTTP server; the blocking pool; the store's checkpoints):
/// mimalloc's per-thread heaps keep them from waiting on each other's allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env(env::LOG).unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour at a terminal only: a redirected log gets no escape codes.
        .with_ansi(cli::colour(&std::io::stderr()))
        .init();
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(cli::EXIT_INTERNAL);
        }
    };
    runtime.block_on(cli::run(args))
}
