//! `ringcast-loadgen`: a thread-per-core WebSocket load generator (connect, echo, churn, push),
//! with `compare` and `plot` for its results.
//!
//! One pinned monoio runtime per client core (io_uring, falling back to epoll), connections
//! split over the cores and optionally over several processes (--procs). The protocol work
//! is done by ringcast's sans-io core: `Session` decodes server frames, `encode_frame` writes
//! masked client frames, `accept_key` checks the upgrade. `wss://` runs over rustls (ring).

mod cli;
mod compare;
mod conn;
mod cpu;
mod engine;
mod handshake;
mod limits;
mod local;
mod pacer;
mod plan;
mod plot;
mod procs;
mod progress;
mod push;
mod report;
mod rng;
mod run;
mod stats;
mod target;
mod tls;
mod transport;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use crate::cli::{Cli, Command, CommonArgs};
use crate::plan::{lanes, Plan};
use crate::progress::ProgressMode;
use crate::report::Merged;
use crate::run::{run_process, ProcessOptions, Start};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("ringcast-loadgen: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    let (plan, common) = match cli.command {
        Command::Connect(args) => (Plan::connect(&args)?, args.common),
        Command::Echo(args) => (Plan::echo(&args)?, args.common),
        Command::Churn(args) => (Plan::churn(&args)?, args.common),
        Command::Push(args) => (Plan::push(&args)?, args.common),
        Command::Compare(args) => {
            let (a, b) = (compare::load(&args.a)?, compare::load(&args.b)?);
            print!("{}", compare::table(&a, &b));
            return Ok(ExitCode::SUCCESS);
        }
        Command::Plot(args) => {
            plot::run(&args)?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    if common.tls_insecure && common.worker_index.is_none() {
        eprintln!("ringcast-loadgen: warning: --tls-insecure: server certificates are not verified");
    }
    let plan = Arc::new(plan);
    let cores = client_cores(&common)?;
    if let (Some(index), Some(count)) = (common.worker_index, common.worker_count) {
        if index >= count {
            return Err(format!(
                "--worker-index {index} is out of range for --worker-count {count}"
            ));
        }
        let lanes = lanes(&cores, count, index);
        let options = ProcessOptions {
            server_pid: common.server_pid,
            progress: ProgressMode::Pipe,
            start: Start::AfterParent,
            io: common.io,
        };
        let report = run_process(plan, &lanes, index, &options)?;
        procs::send_result(&report)?;
        return Ok(ExitCode::SUCCESS);
    }

    let procs = common.procs.max(1);
    let per_proc = (0..procs)
        .map(|w| {
            lanes(&cores, procs, w)
                .iter()
                .map(|l| l.conn_count(plan.conns_total) + plan.extra_sockets_per_lane())
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0);
    let lanes_per_proc = lanes(&cores, procs, 0).len();
    limits::check_ports(plan.conns_total, plan.targets.pairs())?;
    limits::check_nofile(per_proc, plan.conns_total, lanes_per_proc)?;

    let progress = if common.quiet {
        ProgressMode::Quiet
    } else {
        ProgressMode::Stderr
    };
    let reports = if procs == 1 {
        let lanes = lanes(&cores, 1, 0);
        let options = ProcessOptions {
            server_pid: common.server_pid,
            progress,
            start: Start::Alone,
            io: common.io,
        };
        vec![run_process(plan.clone(), &lanes, 0, &options)?]
    } else {
        procs::run_parent(procs, progress, plan.conns_total)?
    };
    let merged = Merged::build(&plan, &reports);
    if let Some(dir) = &common.out {
        merged.write_to(dir)?;
    }
    let summary = &merged.summary;
    print!("{}", report::human(summary));
    if common.json {
        println!("{}", serde_json::to_string(summary).expect("the summary serializes"));
    }
    if summary.errors_total > common.max_errors {
        eprintln!(
            "ringcast-loadgen: {} errors (more than --max-errors {})",
            summary.errors_total, common.max_errors
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The client cores: --core-list, else the first --cores allowed ones, else all allowed ones.
fn client_cores(common: &CommonArgs) -> Result<Vec<usize>, String> {
    if let Some(list) = &common.core_list {
        if list.is_empty() {
            return Err("--core-list is empty".into());
        }
        return Ok(list.clone());
    }
    let allowed: Vec<usize> = core_affinity::get_core_ids()
        .ok_or("cannot read the allowed CPU set")?
        .into_iter()
        .map(|c| c.id)
        .collect();
    match common.cores {
        Some(0) => Err("--cores must be at least 1".into()),
        Some(n) if n > allowed.len() => Err(format!("--cores {n}: only {} cores are allowed", allowed.len())),
        Some(n) => Ok(allowed[..n].to_vec()),
        None if allowed.is_empty() => Err("no allowed cores".into()),
        None => Ok(allowed),
    }
}
