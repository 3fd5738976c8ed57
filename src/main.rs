//! The `ringcast` binary: the engine with a built-in application (`--mode echo`).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use ringcast::{EchoHandler, Server};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let config = match args.into_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ringcast: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = cli::init_logging(&config) {
        eprintln!("ringcast: {error}");
        return ExitCode::from(2);
    }
    let running = match config.mode.as_str() {
        "echo" => Server::new(config).start(|_core| EchoHandler),
        other => {
            eprintln!("ringcast: unknown mode {other:?}; available modes: echo");
            return ExitCode::from(2);
        }
    };
    let running = match running {
        Ok(running) => running,
        Err(error) => {
            eprintln!("ringcast: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = cli::install_signal_handlers(running.shutdown_handle()) {
        eprintln!("ringcast: cannot install signal handlers: {error}");
        return ExitCode::FAILURE;
    }
    for addr in running.local_addrs() {
        // One line per address on stdout, so scripts and tests can find a port-0 listener.
        println!("listening on ws://{addr}/ ({})", running.driver().as_str());
    }
    match running.join() {
        Ok(()) => {
            tracing::info!(event = "stopped", "all cores have shut down");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ringcast: {error}");
            ExitCode::FAILURE
        }
    }
}
