//! Multi-process runs, output files, `compare`, and the refusals before a run starts.

mod support;

use std::os::unix::process::CommandExt;

use serde_json::Value;
use support::{loadgen, run, scratch, summary, u, Mode, Server};

#[test]
fn procs_split_connections_and_merge_results() {
    let server = Server::start(Mode::Echo);
    let url = server.url();
    let (code, out, err) = run(loadgen(&[
        "echo",
        "--url",
        &url,
        "--conns",
        "40",
        "--procs",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--json",
    ]));
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    let s = summary(&out);
    assert_eq!(u(&s, "procs"), 2);
    assert_eq!(u(&s, "conns_established"), 40);
    assert_eq!(u(&s, "errors_total"), 0, "{s}");
    let per_core = s["per_core"].as_array().unwrap();
    let procs: std::collections::BTreeSet<u64> = per_core.iter().map(|c| u(c, "proc")).collect();
    assert_eq!(procs.into_iter().collect::<Vec<_>>(), vec![0, 1]);
    assert!(per_core.iter().all(|c| u(c, "messages") > 0), "{s}");
    assert_eq!(
        per_core.iter().map(|c| u(c, "messages")).sum::<u64>(),
        u(&s, "messages")
    );
    // Both processes measured the same window, so the union is close to one window.
    assert!(s["duration_s"].as_f64().unwrap() < 1.5, "{s}");
}

#[test]
fn out_dir_holds_summary_and_histograms_and_compare_reads_them() {
    let server = Server::start(Mode::Echo);
    let url = server.url();
    let (a, b) = (scratch("a"), scratch("b"));
    for (dir, in_flight) in [(&a, "1"), (&b, "8")] {
        let dir = dir.to_str().unwrap();
        let (code, out, err) = run(loadgen(&[
            "echo",
            "--url",
            &url,
            "--conns",
            "10",
            "--in-flight",
            in_flight,
            "--duration",
            "1s",
            "--warmup",
            "100ms",
            "--out",
            dir,
            "--json",
        ]));
        assert_eq!(code, 0, "stderr: {err}");
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{dir}/summary.json")).unwrap()).unwrap();
        assert_eq!(written, summary(&out));
    }
    let hgrm = std::fs::read_to_string(a.join("latency.hgrm")).unwrap();
    assert!(
        hgrm.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"),
        "{hgrm}"
    );
    assert!(hgrm.contains("#[Max     ="));
    let per_core: Vec<_> = std::fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("latency_core") && n.ends_with(".hgrm"))
        .collect();
    assert!(!per_core.is_empty());
    assert!(a.join("handshake_latency.hgrm").exists());

    let (code, table, err) = run(support::binary(&[
        "compare",
        a.join("summary.json").to_str().unwrap(),
        b.join("summary.json").to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(table.lines().next().unwrap().contains("B/A"));
    for needle in ["msgs_per_sec", "latency_us.p99", "proc 0 core", "p99.9 us", "x\n"] {
        assert!(table.contains(needle), "missing {needle:?} in\n{table}");
    }
    let (code, _, err) = run(support::binary(&["compare", "/nonexistent/summary.json", "x"]));
    assert_eq!(code, 2);
    assert!(err.contains("cannot read /nonexistent/summary.json"));
}

#[test]
fn refuses_more_connections_than_open_files() {
    let mut cmd = loadgen(&[
        "connect",
        "--url",
        "ws://127.0.0.1:9/",
        "--conns",
        "500",
        "--cores",
        "1",
    ]);
    // SAFETY: setrlimit is async-signal-safe and only touches the child.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 200,
                rlim_max: 200,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (code, _, err) = run(cmd);
    assert_eq!(code, 2);
    assert!(err.contains("500 connections need 572 open files"), "{err}");
    assert!(err.contains("limit is 200") && err.contains("--procs"), "{err}");
}

#[test]
fn refuses_more_connections_than_ephemeral_ports() {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let bounds: Vec<u64> = range.split_whitespace().map(|p| p.parse().unwrap()).collect();
    let conns = (bounds[1] - bounds[0] + 2).to_string();
    let (code, _, err) = run(loadgen(&["connect", "--url", "ws://127.0.0.1:9/", "--conns", &conns]));
    assert_eq!(code, 2);
    assert!(err.contains("not enough ephemeral ports"), "{err}");
    assert!(err.contains("--source-addrs") && err.contains("--ports"), "{err}");
}

#[test]
fn source_addresses_and_port_ranges_spread_connections() {
    let servers = [Server::start(Mode::Echo), Server::start(Mode::Echo)];
    let ports = format!("{},{}", servers[0].addr.port(), servers[1].addr.port());
    let url = servers[0].url();
    let (code, out, err) = run(loadgen(&[
        "connect",
        "--url",
        &url,
        "--conns",
        "8",
        "--hold",
        "100ms",
        "--source-addrs",
        "127.0.0.2-127.0.0.3",
        "--ports",
        &ports,
        "--json",
    ]));
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(u(&summary(&out), "conns_established"), 8);
    for server in &servers {
        assert_eq!(support::count(&server.counts.upgraded), 4);
    }
}
