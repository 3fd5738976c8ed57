//! `ringcast-bench`: the comparative benchmark of ringcast (io_uring and epoll) against
//! fastwebsockets, tokio-tungstenite and any extra echo servers, under two independent clients.
//! See benches/README.md.

mod cli;
mod measure;
mod process;
mod report;
mod scenario;
mod syscalls;
mod sysinfo;

use std::path::Path;
use std::process::{Command, ExitCode};

use clap::Parser;

use crate::cli::Args;
use crate::measure::{Bench, Purpose, SYSCALL_RUN_SECS};
use crate::report::Outcome;
use crate::scenario::{
    Client, ExtraServer, Scenario, Workload, PEER_FASTWEBSOCKETS, PEER_TOKIO_TUNGSTENITE, RINGCAST, SYSCALLS_PER_MSG,
};

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ringcast-bench: {err}");
            ExitCode::from(2)
        }
    }
}

/// Selects the scenarios, prepares the binaries and runs everything, printing as it goes.
fn run(args: &Args) -> Result<(), String> {
    scenario::check_unique(&args.servers)?;
    let scenarios = select(args.only.as_deref(), &args.servers)?;
    if args.list {
        scenarios.iter().for_each(|scenario| println!("{}", scenario.name));
        return Ok(());
    }
    if !args.no_build {
        build()?;
    }
    check_binaries(&args.bin_dir)?;
    println!("ringcast-bench on {}", sysinfo::describe_machine());
    println!(
        "{} rep(s) per scenario, servers interleaved within each rep; echo/churn runs: {}s measured after 1s warm-up; \
         binaries from {}",
        args.reps,
        args.duration,
        args.bin_dir.display()
    );
    for extra in &args.servers {
        println!("extra server {}: sh -c {:?}", extra.name, extra.command);
    }
    let syscalls = if args.no_syscalls {
        Err("not measured (--no-syscalls)".to_owned())
    } else {
        syscalls::probe()
    };
    match &syscalls {
        Ok(()) => println!(
            "syscalls/msg: server syscalls (perf stat -e raw_syscalls:sys_enter) per echoed message, from one \
             separate {}s run per server and client after the reps",
            args.duration.min(SYSCALL_RUN_SECS)
        ),
        Err(reason) => println!("syscalls/msg: n/a: {reason}"),
    }
    let bench = Bench::new(args.bin_dir.clone(), args.duration);
    let mut summary = Vec::new();
    for scenario in &scenarios {
        let outcomes = run_scenario(&bench, scenario, args.reps, syscalls.is_ok());
        for &client in scenario.workload.clients() {
            let of_client: Vec<&Outcome> = outcomes.iter().filter(|o| o.client == client).collect();
            println!(
                "\n== {} [client {}] ({})",
                scenario.name,
                client.binary(),
                scenario.note
            );
            print!("{}", report::table(scenario, client, &of_client, args.reps));
            if let (Workload::Echo { .. }, Err(reason)) = (scenario.workload, &syscalls) {
                println!("  syscalls/msg n/a: {reason}");
            }
            for line in report::ratios(scenario, client, &of_client) {
                println!("  {line}");
                summary.push(format!("{} [{}]: {line}", scenario.name, client.binary()));
            }
        }
    }
    println!("\n== summary (ratio = ringcast median / best peer median, or / the named ringcast baseline)");
    summary.iter().for_each(|line| println!("  {line}"));
    Ok(())
}

/// Runs every repetition of `scenario`, each repetition running every client against every
/// variant once in turn; then, for echo loads when `count_syscalls`, one syscall-counting run
/// of each.
fn run_scenario(bench: &Bench, scenario: &Scenario, reps: u32, count_syscalls: bool) -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = scenario
        .workload
        .clients()
        .iter()
        .flat_map(|&client| {
            scenario
                .variants
                .iter()
                .map(move |variant| Outcome::new(client, variant.clone()))
        })
        .collect();
    for rep in 1..=reps {
        for outcome in &mut outcomes {
            let label = format!("{} / {}", outcome.client.binary(), outcome.variant.label());
            match bench.run_once(scenario, outcome.client, &outcome.variant, Purpose::Measure) {
                Ok(sample) => {
                    let shown: Vec<String> = scenario
                        .workload
                        .metrics(outcome.client)
                        .iter()
                        .filter(|metric| metric.headline)
                        .filter_map(|metric| {
                            sample
                                .get(metric.key)
                                .map(|value| format!("{} {value:.0}", metric.label))
                        })
                        .collect();
                    eprintln!("[{} rep {rep}/{reps}] {label}: {}", scenario.name, shown.join(", "));
                    outcome.samples.push(sample);
                }
                Err(err) => {
                    eprintln!("[{} rep {rep}/{reps}] {label} FAILED: {err}", scenario.name);
                    outcome.failures.push((rep, err));
                }
            }
        }
    }
    if count_syscalls && matches!(scenario.workload, Workload::Echo { .. }) {
        for outcome in &mut outcomes {
            let label = format!("{} / {}", outcome.client.binary(), outcome.variant.label());
            let counted = bench
                .run_once(scenario, outcome.client, &outcome.variant, Purpose::CountSyscalls)
                .map(|sample| sample[SYSCALLS_PER_MSG]);
            match &counted {
                Ok(per_msg) => eprintln!("[{} syscalls] {label}: {per_msg:.3} per message", scenario.name),
                Err(err) => eprintln!("[{} syscalls] {label} FAILED: {err}", scenario.name),
            }
            outcome.syscalls = Some(counted);
        }
    }
    outcomes
}

/// The scenario named exactly `only`, else those whose name contains it (all when `None`),
/// each with the extra servers.
fn select(only: Option<&str>, extras: &[ExtraServer]) -> Result<Vec<Scenario>, String> {
    let all = scenario::all(extras);
    let names: Vec<String> = all.iter().map(|scenario| scenario.name.clone()).collect();
    let exact = only.is_some_and(|name| names.iter().any(|candidate| candidate == name));
    let chosen: Vec<Scenario> = all
        .into_iter()
        .filter(|scenario| {
            only.is_none_or(|part| {
                if exact {
                    scenario.name == part
                } else {
                    scenario.name.contains(part)
                }
            })
        })
        .collect();
    if chosen.is_empty() {
        return Err(format!(
            "no scenario matches --only {:?}; scenarios: {}",
            only.unwrap_or(""),
            names.join(", ")
        ));
    }
    Ok(chosen)
}

/// The binaries the harness starts.
fn binaries() -> [&'static str; 5] {
    [
        RINGCAST,
        Client::Loadgen.binary(),
        Client::TungsteniteLoad.binary(),
        PEER_FASTWEBSOCKETS,
        PEER_TOKIO_TUNGSTENITE,
    ]
}

/// `cargo build --release` of the server, both clients and both peers.
fn build() -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "-p",
        "ringcast",
        "-p",
        "ringcast-loadgen",
        "-p",
        "ringcast-peers",
    ]);
    for binary in binaries() {
        cmd.args(["--bin", binary]);
    }
    let status = cmd.status().map_err(|err| format!("cannot run {cmd:?}: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({status})"))
    }
}

/// Fails with the list of missing binaries, if any.
fn check_binaries(bin_dir: &Path) -> Result<(), String> {
    let missing: Vec<String> = binaries()
        .iter()
        .map(|binary| bin_dir.join(binary))
        .filter(|path| !path.is_file())
        .map(|path| path.display().to_string())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "missing binaries (build them, or drop --no-build): {}",
            missing.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::select;

    fn names(only: Option<&str>) -> Vec<String> {
        select(only, &[])
            .unwrap()
            .into_iter()
            .map(|scenario| scenario.name)
            .collect()
    }

    #[test]
    fn only_matches_an_exact_name_alone_else_substrings() {
        assert_eq!(names(Some("echo-100x20B-inflight1")), ["echo-100x20B-inflight1"]);
        assert_eq!(
            names(Some("100x20B-inflight16")),
            ["echo-100x20B-inflight16", "two-core-echo-100x20B-inflight16"]
        );
        assert_eq!(names(None).len(), 9);
        assert!(select(Some("no-such-scenario"), &[]).is_err());
    }
}
