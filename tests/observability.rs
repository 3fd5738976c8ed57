//! Observability over the real binary with an independent client (tungstenite): exact counter
//! values and histogram counts in `/metrics` after known traffic, per-core series that add up
//! to the totals, `/debug/latency`, the dashboard's stats stream, `--metrics-listen`, fan-out
//! latency in push mode, and connection ids that read the same in logs and the API.

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::push::{publish, Subscriber};
use common::{http_at, upgrade_request, ServerProcess, DRIVERS};
use ringcast::api::ConnId;
use serde_json::Value;
use tungstenite::Message;

/// One scrape: every sample by its series (`name{labels}`).
struct Scrape {
    text: String,
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    fn of(addr: SocketAddr) -> Scrape {
        let response = http_at(addr, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
        let (head, text) = response.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let samples = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("series and value");
                (series.to_owned(), value.parse().expect("a number"))
            })
            .collect();
        Scrape {
            text: text.to_owned(),
            samples,
        }
    }

    fn get(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in\n{}", self.text))
    }

    /// The sum of `name` over its `core` label.
    fn over_cores(&self, name: &str, cores: usize) -> f64 {
        (0..cores).map(|c| self.get(&format!("{name}{{core=\"{c}\"}}"))).sum()
    }

    /// The `_count` of a histogram family summed over cores, after checking every core's
    /// buckets are cumulative and end at that count.
    fn histogram_count(&self, family: &str, cores: usize) -> f64 {
        (0..cores)
            .map(|core| {
                let prefix = format!("{family}_bucket{{core=\"{core}\",le=");
                let buckets: Vec<f64> = self
                    .samples
                    .iter()
                    .filter(|(s, _)| s.starts_with(&prefix))
                    .map(|(_, &v)| v)
                    .collect();
                let count = self.get(&format!("{family}_count{{core=\"{core}\"}}"));
                let inf = self.get(&format!("{prefix}\"+Inf\"}}"));
                assert!(buckets.len() >= 10, "{family} core {core} has buckets");
                assert_eq!(inf, count, "{family} core {core}: +Inf bucket is the count");
                let mut ordered: Vec<(f64, f64)> = self
                    .samples
                    .iter()
                    .filter_map(|(s, &v)| {
                        let le = s.strip_prefix(&prefix)?.trim_end_matches("\"}").trim_start_matches('"');
                        Some((le.parse::<f64>().unwrap_or(f64::INFINITY), v))
                    })
                    .collect();
                ordered.sort_by(|a, b| a.0.total_cmp(&b.0));
                assert!(
                    ordered.windows(2).all(|w| w[0].1 <= w[1].1),
                    "{family} core {core} cumulative"
                );
                count
            })
            .sum()
    }
}

/// Scrapes until `done` holds (histograms are published once a second), bounded.
fn scrape_until(addr: SocketAddr, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    for _ in 0..100 {
        let scrape = Scrape::of(addr);
        if done(&scrape) {
            return scrape;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} never held; last scrape:\n{}", Scrape::of(addr).text);
}

fn client(server: &ServerProcess, path: &str) -> tungstenite::WebSocket<TcpStream> {
    let stream = server.tcp();
    tungstenite::client(server.url(path).as_str(), stream)
        .expect("upgrade")
        .0
}

#[test]
fn metrics_count_exactly_what_the_clients_did() {
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, &["--cores", "2"]);
        let (clients, messages) = (6, 5);
        let mut sockets: Vec<_> = (0..clients).map(|_| client(&server, "/")).collect();
        for ws in &mut sockets {
            for i in 0..messages {
                ws.send(Message::text(format!("m{i}"))).unwrap();
                assert_eq!(ws.read().unwrap(), Message::text(format!("m{i}")));
            }
        }
        let closing = 2;
        for mut ws in sockets.drain(..closing) {
            ws.close(None).unwrap();
            while ws.read().is_ok() {}
        }
        let scrape = scrape_until(server.addr, "two lifetimes published", |s| {
            s.histogram_count("ringcast_connection_lifetime_seconds", 2) == closing as f64
                && s.histogram_count("ringcast_handler_duration_seconds", 2) == (clients * messages) as f64
        });
        let total = |name: &str| scrape.get(name);
        assert_eq!(total("ringcast_upgrades_total"), clients as f64, "{driver}");
        assert_eq!(scrape.over_cores("ringcast_core_upgrades_total", 2), clients as f64);
        assert_eq!(total("ringcast_messages_received_total"), (clients * messages) as f64);
        assert_eq!(
            scrape.over_cores("ringcast_core_messages_received_total", 2),
            (clients * messages) as f64
        );
        assert_eq!(total("ringcast_messages_sent_total"), (clients * messages) as f64);
        assert_eq!(total("ringcast_connections_open"), (clients - closing) as f64);
        assert_eq!(
            scrape.over_cores("ringcast_core_connections_open", 2),
            (clients - closing) as f64
        );
        assert_eq!(
            total("ringcast_connections_closed_total{by=\"client\"}"),
            closing as f64
        );
        assert_eq!(total("ringcast_accept_errors_total{errno=\"EMFILE\"}"), 0.0);
        assert_eq!(
            scrape.histogram_count("ringcast_handshake_duration_seconds", 2),
            clients as f64
        );
        // Every message came in a read of its own (the client waited for each echo); the close
        // frames are reads too.
        let reads = scrape.histogram_count("ringcast_loop_lag_seconds", 2);
        assert!(reads >= (clients * messages + closing) as f64, "{reads} reads");
        assert!(scrape.histogram_count("ringcast_timer_pass_duration_seconds", 2) > 0.0);
        assert_eq!(scrape.histogram_count("ringcast_fanout_latency_seconds", 2), 0.0);
        let data_path = if driver == "uring" { "io_uring" } else { "epoll" };
        assert!(
            scrape.text.lines().any(|l| l.starts_with("ringcast_build_info{")
                && l.contains(&format!("data_path=\"{data_path}\""))
                && l.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
                && l.ends_with(" 1")),
            "{}",
            scrape.text
        );
        assert!(total("process_open_fds") >= (clients - closing) as f64);
        assert!(total("process_max_fds") >= total("process_open_fds"));
        assert!(scrape
            .text
            .contains("# TYPE ringcast_handshake_duration_seconds histogram\n"));
        assert!(scrape.text.contains("# TYPE process_cpu_seconds_total counter\n"));
    }
}

#[test]
fn connection_ids_read_core_slot_generation_in_logs() {
    let server = ServerProcess::start("uring", &["--cores", "2"]);
    let mut sockets: Vec<_> = (0..4).map(|_| client(&server, "/")).collect();
    for mut ws in sockets.drain(..) {
        ws.close(None).unwrap();
        while ws.read().is_ok() {}
    }
    for _ in 0..200 {
        if server.json_events("close").len() == 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let opens = server.json_events("open");
    assert_eq!(opens.len(), 4);
    for open in &opens {
        let text = open["conn"].as_str().expect("a string id");
        let id: ConnId = text.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.to_string(), text);
        assert_eq!(Some(id.core() as u64), open["core"].as_u64(), "{open}");
        let closes = server.json_events("close");
        assert!(
            closes.iter().any(|c| c["conn"] == open["conn"]),
            "{open} closed under the same id"
        );
    }
}

#[test]
fn debug_latency_serves_each_cores_histogram_as_hgrm() {
    let server = ServerProcess::start("uring", &["--cores", "2"]);
    let _sockets: Vec<_> = (0..5).map(|_| client(&server, "/")).collect();
    let scrape = scrape_until(server.addr, "five handshakes published", |s| {
        s.histogram_count("ringcast_handshake_duration_seconds", 2) == 5.0
    });
    let body = |query: &str| {
        let response = server.http(&format!("GET /debug/latency?{query} HTTP/1.1\r\nHost: t\r\n\r\n"));
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        (head.split(' ').nth(1).unwrap().parse::<u16>().unwrap(), body.to_owned())
    };
    let total_count = |hgrm: &str| -> u64 {
        let line = hgrm.lines().find(|l| l.contains("Total count")).expect("trailer");
        line.split('=')
            .nth(2)
            .unwrap()
            .trim()
            .trim_end_matches(']')
            .trim()
            .parse()
            .unwrap()
    };
    for core in 0..2 {
        let (status, hgrm) = body(&format!("core={core}&metric=handshake_duration"));
        assert_eq!(status, 200);
        let expected = scrape.get(&format!("ringcast_handshake_duration_seconds_count{{core=\"{core}\"}}"));
        assert_eq!(total_count(&hgrm) as f64, expected, "core {core}:\n{hgrm}");
        assert!(hgrm.lines().next().unwrap().contains("Percentile"));
    }
    let (status, merged) = body("metric=handshake_duration");
    assert_eq!((status, total_count(&merged)), (200, 5));
    assert_eq!(body("core=2&metric=loop_lag").0, 404);
    assert_eq!(body("core=0&metric=bogus").0, 400);
    assert_eq!(body("core=0").0, 400);
}

/// Opens the dashboard's stats stream at `addr` and reads frames as JSON.
struct StatsStream(tungstenite::WebSocket<TcpStream>);

impl StatsStream {
    fn open(addr: SocketAddr) -> StatsStream {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let url = format!("ws://{addr}/dashboard/stream");
        StatsStream(tungstenite::client(url.as_str(), stream).expect("upgrade").0)
    }

    fn next(&mut self) -> Value {
        loop {
            match self.0.read().expect("a stats frame") {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected text, got {other:?}"),
            }
        }
    }

    /// Reads frames until one says `connections_open` is `open` (bounded).
    fn until_open(&mut self, open: u64) -> Value {
        for _ in 0..15 {
            let stats = self.next();
            if stats["connections_open"] == open {
                return stats;
            }
        }
        panic!("connections_open never reached {open}");
    }
}

#[test]
fn the_stats_stream_reports_connections_and_ignores_what_the_page_sends() {
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, &["--cores", "2"]);
        let mut stats = StatsStream::open(server.addr);
        let first = stats.next();
        assert_eq!(first["type"], "stats");
        assert_eq!(first["connections_open"], 1, "the dashboard itself: {first}");
        assert_eq!(first["cores"].as_array().unwrap().len(), 2);
        stats.0.send(Message::text("hello?")).unwrap();
        let mut sockets: Vec<_> = (0..3).map(|_| client(&server, "/")).collect();
        for ws in &mut sockets {
            ws.send(Message::text("x")).unwrap();
            ws.read().unwrap();
        }
        let live = stats.until_open(4);
        let per_core: u64 = live["cores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["connections_open"].as_u64().unwrap())
            .sum();
        assert_eq!(per_core, 4, "{live}");
        // The page's frame went to no handler: the echo server sent nothing back on the stream.
        assert_eq!(server.metric("ringcast_messages_received_total"), 3, "{driver}");
        drop(sockets);
        stats.until_open(1);
    }
}

#[test]
fn metrics_listen_moves_the_observability_endpoints_off_the_websocket_port() {
    let server = ServerProcess::start("uring", &["--metrics-listen", "127.0.0.1:0"]);
    let metrics = server.printed_addr("metrics on http://", "/metrics");
    let status = |addr: SocketAddr, request: &str| -> u16 {
        let response = http_at(addr, request);
        response.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0)
    };
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    let _ws = client(&server, "/");
    assert_eq!(Scrape::of(metrics).get("ringcast_connections_open"), 1.0);
    for path in ["/metrics", "/debug/latency?metric=loop_lag", "/dashboard"] {
        assert_eq!(status(metrics, &get(path)), 200, "{path} on the metrics address");
        assert_eq!(
            status(server.addr, &get(path)),
            426,
            "{path} on the WebSocket port (ws_paths = *)"
        );
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(status(metrics, &get(path)), 200, "{path}");
        assert_eq!(status(server.addr, &get(path)), 200, "{path}");
    }
    // The metrics address upgrades nothing but the dashboard's stream.
    assert_eq!(status(metrics, &upgrade_request("/")), 404);
    let mut stats = StatsStream::open(metrics);
    assert_eq!(stats.next()["connections_open"], 2);
    // POSTs there never reach the application (push publishes live on the WebSocket port).
    let post = "POST /publish/a HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx";
    assert_eq!(status(metrics, post), 404);
}

#[test]
fn push_fanouts_are_timed_per_core() {
    for driver in DRIVERS {
        let server = ServerProcess::start(driver, &["--mode", "push", "--cores", "2"]);
        let mut subscribers: Vec<Subscriber> = (0..6)
            .map(|_| Subscriber::connect(server.addr, "/ws?topics=news"))
            .collect();
        for s in &mut subscribers {
            s.expect_subscribed("news");
        }
        for i in 0..4 {
            publish(server.addr, "news", &format!("m{i}"));
        }
        for s in &mut subscribers {
            for _ in 0..4 {
                s.expect_message();
            }
        }
        // One observation per publish on each core with subscribers (SO_REUSEPORT may have put
        // all six on one core). The gauges are live; the histograms follow within a second.
        let live = Scrape::of(server.addr);
        let with_subscribers = (0..2)
            .filter(|c| live.get(&format!("ringcast_core_connections_open{{core=\"{c}\"}}")) > 0.0)
            .count();
        let expected = (4 * with_subscribers) as f64;
        let scrape = scrape_until(
            server.addr,
            &format!("{driver}: every core's fan-outs published"),
            |s| s.histogram_count("ringcast_fanout_latency_seconds", 2) == expected,
        );
        assert_eq!(scrape.get("ringcast_push_deliveries_total"), 24.0);
        assert_eq!(scrape.get("ringcast_push_publishes_total"), 4.0);
    }
}
