//! The `ringcast` binary: the engine with a built-in application (`--mode echo` or `--mode push`).

mod cli;

use std::fmt::Display;
use std::process::ExitCode;

use clap::Parser;
use ringcast::logging::LogGuard;
use ringcast::push::{PushServer, RunningPush};
use ringcast::{Config, EchoHandler, RunningServer, Server, ServerError};

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
    let logs = match cli::init_logging(&config) {
        Ok(logs) => logs,
        Err(error) => {
            eprintln!("ringcast: {error}");
            return ExitCode::from(2);
        }
    };
    // `logs` is dropped after `serve` returns: that writes out the lines still buffered.
    serve(config, &logs)
}

/// Runs the configured application until shutdown.
fn serve(config: Config, logs: &LogGuard) -> ExitCode {
    let scheme = if config.tls_cert.is_empty() { "ws" } else { "wss" };
    let running = match config.mode.as_str() {
        "echo" => Server::new(config)
            .start(|_core| EchoHandler)
            .map(Running::Echo)
            .map_err(|e| e.to_string()),
        "push" => PushServer::new(config)
            .start()
            .map(Running::Push)
            .map_err(|e| e.to_string()),
        other => return fail(logs, format!("unknown mode {other:?}; available modes: echo, push"), 2),
    };
    let running = match running {
        Ok(running) => running,
        Err(error) => return fail(logs, error, 1),
    };
    let server = running.server();
    if let Err(error) = cli::install_signal_handlers(server.shutdown_handle(), logs.writer().clone()) {
        return fail(logs, format!("cannot install signal handlers: {error}"), 1);
    }
    for addr in server.local_addrs() {
        // One line per address on stdout, so scripts and tests can find a port-0 listener.
        println!("listening on {scheme}://{addr}/ ({})", server.driver().as_str());
    }
    for addr in server.metrics_addrs() {
        println!("metrics on http://{addr}/metrics");
    }
    for addr in server.admin_addrs() {
        println!("admin on http://{addr}/");
    }
    match running.join() {
        Ok(()) => {
            tracing::info!(event = "stopped", "all cores have shut down");
            ExitCode::SUCCESS
        }
        Err(error) => fail(logs, error, 1),
    }
}

/// The application the binary runs.
enum Running {
    Echo(RunningServer),
    Push(RunningPush),
}

impl Running {
    fn server(&self) -> &RunningServer {
        match self {
            Running::Echo(server) => server,
            Running::Push(push) => push.server(),
        }
    }

    fn join(self) -> Result<(), ServerError> {
        match self {
            Running::Echo(server) => server.join(),
            Running::Push(push) => push.join(),
        }
    }
}

/// Prints `ringcast: <error>` on stderr after the log lines logged before it.
fn fail(logs: &LogGuard, error: impl Display, code: u8) -> ExitCode {
    logs.flush(LogGuard::EXIT_FLUSH);
    eprintln!("ringcast: {error}");
    ExitCode::from(code)
}
