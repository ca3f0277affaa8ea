//! The `wasp` binary: installs the diagnostics subscriber and hands over to [`cli`].

use std::process::ExitCode;

use clap::Parser;
use wasp_runtime::{cli, env, telemetry};

/// Many threads allocate at once here (Tokio's workers, which run the steps, the store's
/// writes and the HTTP server; the blocking pool; the store's checkpoints):
/// mimalloc's per-thread heaps keep them from waiting on each other's allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Colour at a terminal only: a redirected log gets no escape codes.
    let telemetry = telemetry::init(
        std::env::var(env::LOG).ok(),
        cli::colour(&std::io::stderr()),
    );
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
    let code = runtime.block_on(cli::run(args));
    telemetry.shutdown();
    code
}
