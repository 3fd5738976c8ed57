//! The monitoring assets (`tuning/prometheus`: alert rules, their unit tests, an example
//! configuration; `tuning/grafana/ringcast.json`: the dashboard) against the tools that consume
//! them and against the real binary: promtool checks and unit-tests the rules, lints a real
//! scrape, every metric name the rules and the dashboard use is in that scrape, and a real
//! Prometheus server scrapes the binary under both io drivers and loads the rules.
//!
//! `promtool` and `prometheus` (Debian package `prometheus`, which `.ci/run` installs) are
//! required: without them these tests fail rather than skip.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::push::{publish, Subscriber};
use common::{http_at, ServerProcess, DRIVERS};
use serde_json::{json, Value};
use tungstenite::Message;

/// A file of the repository's `tuning/` directory.
fn asset(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning").join(relative)
}

fn read_asset(relative: &str) -> String {
    std::fs::read_to_string(asset(relative)).unwrap_or_else(|e| panic!("read tuning/{relative}: {e}"))
}

/// Runs `program args` in `dir` with `stdin` on its standard input; fails the test with an
/// install hint when the program is missing.
fn run_tool(program: &str, args: &[&str], dir: &Path, stdin: &str) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): install the Debian package `prometheus` (.ci/run does)")
        });
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// Asserts a tool run succeeded, showing what it printed otherwise.
fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what}: {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_checks_the_rules_and_config_and_passes_the_rule_unit_tests() {
    let dir = asset("prometheus");
    let check = run_tool("promtool", &["check", "rules", "alerts.yml"], &dir, "");
    assert_success("promtool check rules alerts.yml", &check);
    let config = run_tool("promtool", &["check", "config", "prometheus.yml"], &dir, "");
    assert_success("promtool check config prometheus.yml", &config);
    let unit = run_tool("promtool", &["test", "rules", "alerts_test.yml"], &dir, "");
    assert_success("promtool test rules alerts_test.yml", &unit);
    // Every alert has unit tests (a rule added without them fails here).
    let tests = read_asset("prometheus/alerts_test.yml");
    for alert in alert_names() {
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "alerts_test.yml has no case for {alert}"
        );
    }
}

#[test]
fn a_real_scrape_passes_promtool_check_metrics() {
    for driver in DRIVERS {
        let (_server, _clients, scrape) = exercised_push_server(driver);
        let lint = run_tool("promtool", &["check", "metrics"], Path::new("."), &scrape);
        let problems = format!(
            "{}{}",
            String::from_utf8_lossy(&lint.stdout),
            String::from_utf8_lossy(&lint.stderr)
        );
        assert!(
            lint.status.success() && problems.trim().is_empty(),
            "{driver}: promtool check metrics ({}) found problems:\n{problems}",
            lint.status
        );
    }
}

#[test]
fn every_metric_the_rules_and_the_dashboard_use_is_in_a_real_scrape() {
    let used = asset_metric_names();
    assert!(
        used.len() > 40,
        "too few names found, is the extraction broken? {used:?}"
    );
    for driver in DRIVERS {
        let (_server, _clients, scrape) = exercised_push_server(driver);
        let missing: Vec<String> = used
            .iter()
            .filter_map(|(name, files)| not_exported(name, &scrape).map(|why| format!("{name} ({files}): {why}")))
            .collect();
        assert!(
            missing.is_empty(),
            "{driver}: {} names used by the assets are not exported:\n{}\n--- scrape\n{scrape}",
            missing.len(),
            missing.join("\n")
        );
    }
}

#[test]
fn a_real_prometheus_scrapes_both_drivers_and_loads_the_rules() {
    // One server per io driver, each holding a known number of echo connections.
    let servers: Vec<ServerProcess> = DRIVERS
        .iter()
        .map(|driver| ServerProcess::start(driver, &["--cores", "2"]))
        .collect();
    let mut clients = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        for n in 0..i + 2 {
            let (mut ws, _) = tungstenite::connect(server.url("/")).unwrap();
            ws.send(Message::text(format!("hello {n}"))).unwrap();
            assert_eq!(ws.read().unwrap(), Message::text(format!("hello {n}")));
            clients.push(ws);
        }
    }
    let targets: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    let prometheus = PrometheusProcess::start(&targets);

    for (i, target) in targets.iter().enumerate() {
        let open = (i + 2) as f64;
        let query = format!("ringcast_connections_open{{instance=\"{target}\"}}");
        prometheus.wait_for(&query, |v| v == open, &format!("{open} open connections"));
        let median =
            format!("histogram_quantile(0.5, sum by (le) (ringcast_handshake_duration_seconds_bucket{{instance=\"{target}\"}}))");
        prometheus.wait_for(&median, |v| v.is_finite() && v > 0.0, "a finite positive median");
    }

    // The rule group loads, has every alert of alerts.yml, and each evaluates without error.
    let expected = alert_names();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rules = prometheus.api("/api/v1/rules");
        let group = rules["data"]["groups"]
            .as_array()
            .and_then(|groups| groups.iter().find(|g| g["name"] == "ringcast"))
            .cloned()
            .unwrap_or(Value::Null);
        let loaded: Vec<String> = group["rules"]
            .as_array()
            .map(|r| r.iter().filter_map(|r| r["name"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let healthy = group["rules"]
            .as_array()
            .is_some_and(|r| r.iter().all(|r| r["health"] == "ok"));
        if loaded == expected && healthy {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ringcast rule group never loaded healthy with {expected:?}: {group:#}\n{}",
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Every dashboard query is valid PromQL for the real engine (Grafana's variables filled in).
    for expr in dashboard_exprs() {
        let query = expr
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*")
            .replace("$core", ".*");
        let reply = prometheus.api(&format!("/api/v1/query?query={}", url_encode(&query)));
        assert_eq!(reply["status"], "success", "{query}: {reply}");
    }
    drop(clients);
}

// --- a push server with traffic of every kind the histograms record -------------------------

/// A push server on two cores that has done handshakes, client commands, WebSocket and HTTP
/// publishes with fan-out, and a close; returns it, its open clients and a scrape taken once
/// every name the assets use is present (the per-core histograms are published once a second),
/// or after 10 s.
fn exercised_push_server(driver: &str) -> (ServerProcess, Vec<Subscriber>, String) {
    let server = ServerProcess::start(driver, &["--mode", "push", "--cores", "2", "--push-ws-publish"]);
    let mut subscribers: Vec<Subscriber> = (0..4)
        .map(|_| Subscriber::connect(server.addr, "/ws?topics=news"))
        .collect();
    subscribers.iter_mut().for_each(|s| drop(s.expect_subscribed("news")));
    let mut publisher = Subscriber::connect(server.addr, "/ws");
    for i in 1..=3 {
        publisher.command(json!({"op":"publish","topic":"news","data":format!("ws {i}"),"ref":i}));
        assert_eq!(publisher.next_json()["type"], "published");
    }
    for i in 1..=2 {
        publish(server.addr, "news", &format!("http {i}"));
    }
    for s in &mut subscribers {
        let got: Vec<String> = (0..5).map(|_| s.expect_message().3).collect();
        assert_eq!(got, ["ws 1", "ws 2", "ws 3", "http 1", "http 2"], "{driver}");
    }
    // One connection closes (a lifetime, a close by the client).
    let mut leaving = subscribers.pop().unwrap();
    leaving.ws.close(None).unwrap();
    while leaving.ws.read().is_ok() {}
    subscribers.push(publisher);

    let used = asset_metric_names();
    let mut scrape = String::new();
    for _ in 0..100 {
        scrape = scrape_metrics(server.addr);
        if used.keys().all(|name| not_exported(name, &scrape).is_none()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, subscribers, scrape)
}

/// The body of `GET /metrics`.
fn scrape_metrics(addr: SocketAddr) -> String {
    let response = http_at(addr, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{response:?}"));
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    body.to_owned()
}

/// Why `name` cannot be queried from `scrape`, or `None` when it can: it needs sample lines,
/// and a `_bucket` name needs its family typed as a histogram (`_sum`/`_count`: a histogram or
/// a summary).
fn not_exported(name: &str, scrape: &str) -> Option<String> {
    let has_samples = scrape
        .lines()
        .any(|line| !line.starts_with('#') && line.split(['{', ' ']).next() == Some(name) && line.len() > name.len());
    if !has_samples {
        return Some("no samples".into());
    }
    let type_of = |family: &str| {
        scrape.lines().find_map(|line| {
            let rest = line.strip_prefix("# TYPE ")?;
            let (n, t) = rest.split_once(' ')?;
            (n == family).then(|| t.trim().to_owned())
        })
    };
    let allowed: &[&str] = match ["_bucket", "_sum", "_count"].iter().find(|s| name.ends_with(*s)) {
        Some(&"_bucket") => &["histogram"],
        Some(_) => &["histogram", "summary"],
        None => return None,
    };
    let family = name.rsplit_once('_').unwrap().0;
    match type_of(family) {
        Some(t) if allowed.contains(&t.as_str()) => None,
        // A counter can end in _count; a family of that full name is fine too.
        _ if type_of(name).is_some() => None,
        other => Some(format!("family {family} is typed {other:?}, not {allowed:?}")),
    }
}

// --- names used by the assets ---------------------------------------------------------------

/// The alert names of alerts.yml, in file order.
fn alert_names() -> Vec<String> {
    let names: Vec<String> = read_asset("prometheus/alerts.yml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:").map(|n| n.trim().to_owned()))
        .collect();
    assert!(!names.is_empty(), "no alerts found in alerts.yml");
    names
}

/// The `expr` of every rule of alerts.yml (block scalars `expr: |` or one-line values).
fn rule_exprs() -> Vec<String> {
    let yaml = read_asset("prometheus/alerts.yml");
    let lines: Vec<&str> = yaml.lines().collect();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let mut exprs = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        let Some(value) = line.trim_start().strip_prefix("expr:").map(str::trim) else {
            continue;
        };
        if matches!(value, "|" | "|-" | ">" | ">-") {
            let mut block = String::new();
            while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > indent(line)) {
                block.push_str(lines[i].trim());
                block.push('\n');
                i += 1;
            }
            exprs.push(block);
        } else {
            exprs.push(value.trim_matches(['"', '\'']).to_owned());
        }
    }
    assert_eq!(exprs.len(), alert_names().len(), "one expr per alert: {exprs:#?}");
    exprs
}

/// The dashboard's panel queries (rows' nested panels too).
fn dashboard_exprs() -> Vec<String> {
    fn walk(panels: &Value, out: &mut Vec<String>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                out.push(target["expr"].as_str().expect("every target has an expr").to_owned());
            }
            walk(&panel["panels"], out);
        }
    }
    let mut exprs = Vec::new();
    walk(&dashboard()["panels"], &mut exprs);
    assert!(!exprs.is_empty(), "no panel queries in the dashboard");
    exprs
}

fn dashboard() -> Value {
    serde_json::from_str(&read_asset("grafana/ringcast.json")).expect("ringcast.json is JSON")
}

/// The metric selectors of the dashboard's `label_values(SELECTOR, label)` variables.
fn dashboard_variable_selectors() -> Vec<String> {
    let dashboard = dashboard();
    let variables = dashboard["templating"]["list"].as_array().expect("templating.list");
    let core = variables.iter().find(|v| v["name"] == "core").expect("a core variable");
    assert_eq!(
        core["definition"], "label_values(ringcast_core_connections_open, core)",
        "the core variable"
    );
    variables
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let definition = v["definition"].as_str().expect("a query variable's definition");
            let inner = definition
                .strip_prefix("label_values(")
                .and_then(|rest| rest.rsplit_once(','))
                .unwrap_or_else(|| panic!("not label_values(SELECTOR, label): {definition}"))
                .0;
            inner.to_owned()
        })
        .collect()
}

/// Every metric name the alert rules and the dashboard query, with the files using it.
fn asset_metric_names() -> BTreeMap<String, String> {
    let mut used: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    let sources = [
        ("alerts.yml", rule_exprs()),
        ("ringcast.json", dashboard_exprs()),
        ("ringcast.json variables", dashboard_variable_selectors()),
    ];
    for (file, exprs) in &sources {
        for expr in exprs {
            for name in metric_names(expr) {
                used.entry(name).or_default().insert(file);
            }
        }
    }
    used.into_iter()
        .map(|(name, files)| (name, files.into_iter().collect::<Vec<_>>().join(", ")))
        .collect()
}

/// The metric names a PromQL expression selects: identifiers outside strings, label matchers
/// (`{...}`), ranges (`[...]`) and grouping lists (`by (...)`), that are not keywords,
/// aggregations or function calls. Names must start with `ringcast_` or `process_`, so an
/// identifier this scanner misreads fails loudly instead of being skipped.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 22] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "group",
    ];
    const GROUPING: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];
    let chars: Vec<char> = expr.chars().collect();
    let next_non_space = |from: usize| chars[from..].iter().copied().find(|c| !c.is_whitespace());
    // The index just past the bracket that closes the one opened at `open`, skipping strings.
    let skip_group = |open: usize, close: char| {
        let mut j = open + 1;
        let mut quote = None;
        while j < chars.len() {
            match (quote, chars[j]) {
                (Some(_), '\\') => j += 1,
                (Some(q), c) if c == q => quote = None,
                (None, c @ ('"' | '\'' | '`')) => quote = Some(c),
                (None, c) if c == close => return j + 1,
                _ => {}
            }
            j += 1;
        }
        panic!("unclosed {close:?} in {expr}");
    };
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            let rest = chars[i + 1..].iter().position(|&d| d == c).expect("closed string");
            i += rest + 2;
        } else if c == '{' {
            i = skip_group(i, '}');
        } else if c == '[' {
            i = skip_group(i, ']');
        } else if c.is_ascii_digit() || c == '$' {
            // A number (0.99, 1e3, 5m) or a dashboard variable ($core).
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '.')) {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':')) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if GROUPING.contains(&word.as_str()) && next_non_space(i) == Some('(') {
                let open = i + chars[i..].iter().position(|&d| d == '(').unwrap();
                i = skip_group(open, ')');
            } else if KEYWORDS.contains(&word.as_str()) || next_non_space(i) == Some('(') {
                // a keyword, an aggregation or a function call
            } else {
                assert!(
                    word.starts_with("ringcast_") || word.starts_with("process_"),
                    "{word:?} read as a metric name in: {expr}"
                );
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_reads_selectors_not_labels_functions_or_keywords() {
    let expr = r#"histogram_quantile(0.99, sum by (le, core) (rate(ringcast_a_bucket{core=~"$core", x="ringcast_no"}[$__rate_interval])))
        / on (job, instance) group_left avg by (job) (ringcast_b) > 0.5
        and on (job, instance) process_open_fds / process_max_fds and ringcast_c offset 5m"#;
    let names: Vec<String> = metric_names(expr).into_iter().collect();
    assert_eq!(
        names,
        [
            "process_max_fds",
            "process_open_fds",
            "ringcast_a_bucket",
            "ringcast_b",
            "ringcast_c"
        ]
    );
}

// --- a Prometheus server --------------------------------------------------------------------

/// `prometheus` on a free loopback port, scraping `targets` every second with alerts.yml
/// loaded; killed (and its directory removed) on drop.
struct PrometheusProcess {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl PrometheusProcess {
    fn start(targets: &[String]) -> PrometheusProcess {
        let dir = std::env::temp_dir().join(format!(
            "ringcast-prometheus-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules:?}\n\
             scrape_configs:\n  - job_name: ringcast\n    static_configs:\n      - targets: {targets:?}\n",
            rules = asset("prometheus/alerts.yml").display().to_string(),
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run prometheus ({e}): install the Debian package `prometheus` (.ci/run does)")
            });
        let mut prometheus = PrometheusProcess { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = prometheus.child.try_wait().unwrap() {
                panic!("prometheus exited ({status}):\n{}", prometheus.log());
            }
            if TcpStream::connect(addr).is_ok() && status_of(&prometheus.get("/-/ready")) == Some(200) {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 30 s:\n{}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The raw response to `GET path` (HTTP/1.0: the server closes after one response).
    fn get(&self, path: &str) -> String {
        http_at(
            self.addr,
            &format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr),
        )
    }

    /// The JSON body of an API call.
    fn api(&self, path: &str) -> Value {
        let response = self.get(path);
        let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {response}"))
    }

    /// Waits (30 s at most) until the instant query's single result satisfies `ok`.
    fn wait_for(&self, query: &str, ok: impl Fn(f64) -> bool, wanted: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let reply = self.api(&format!("/api/v1/query?query={}", url_encode(query)));
            assert_eq!(reply["status"], "success", "{query}: {reply}");
            let value = reply["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok());
            if value.is_some_and(&ok) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{query} never gave {wanted} in 30 s (last reply {reply}):\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The status code of a raw HTTP response.
fn status_of(response: &str) -> Option<u16> {
    response.split(' ').nth(1)?.parse().ok()
}

/// Percent-encodes a query-string value.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
