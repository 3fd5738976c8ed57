//! The dashboard (`GET /dashboard`) in a real headless Chromium against the real binary: it
//! goes live on its stats stream, counts the clients that connect, shows their traffic, asks
//! nothing of any other origin, and renders (a screenshot under `target/test-artifacts/`).

mod common;

use std::time::{Duration, Instant};

use common::browser::{Browser, WAIT};
use common::ServerProcess;
use serde_json::json;
use tungstenite::Message;

/// Test clients connected next to the dashboard.
const CLIENTS: usize = 3;

/// True once some core's row shows messages per second both in and out.
const TRAFFIC_SHOWN: &str = "[...document.querySelectorAll('#cores tr')].some(r => \
     parseFloat(r.children[2].textContent) > 0 && parseFloat(r.children[3].textContent) > 0)";

#[test]
fn dashboard_under_io_uring() {
    dashboard_shows_the_server_live("uring", "dashboard.png");
}

#[test]
fn dashboard_under_epoll() {
    dashboard_shows_the_server_live("epoll", "dashboard-epoll.png");
}

fn dashboard_shows_the_server_live(driver: &str, artifact: &str) {
    let server = ServerProcess::start(driver, &["--cores", "2"]);
    let origin = server.addr.to_string();
    let mut browser = Browser::launch();
    browser.call("Network.enable", json!({}));
    browser.navigate(&format!("http://{origin}/dashboard"));
    browser.wait_until(
        "document.getElementById('stream-state').textContent === 'live'",
        "#stream-state to read live",
    );

    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|_| tungstenite::connect(server.url("/")).expect("client connects").0)
        .collect();
    // The dashboard's stats stream is itself a WebSocket connection in its core's connection
    // table, and connections_open sums the tables' lengths (dashboards included, as the spec
    // says), so the page shows CLIENTS + 1.
    let expected = CLIENTS + 1;
    let shows_expected = format!("document.getElementById('connections-open').textContent === '{expected}'");
    browser.wait_until(&shows_expected, &format!("#connections-open to read {expected}"));

    // Echo traffic until the per-core table shows it, and for at least 3 s of chart history.
    let start = Instant::now();
    let mut round = 0;
    loop {
        for client in &mut clients {
            for n in 0..10 {
                client
                    .send(Message::text(format!("round {round} message {n}")))
                    .unwrap();
            }
            for n in 0..10 {
                let echo = client.read().unwrap();
                assert_eq!(echo, Message::text(format!("round {round} message {n}")));
            }
        }
        round += 1;
        if start.elapsed() > Duration::from_secs(3) && browser.eval(TRAFFIC_SHOWN) == json!(true) {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "the per-core table never showed messages in and out"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(browser.eval("document.body.dataset.ready"), json!("1"));
    assert_eq!(
        browser.eval("document.getElementById('stream-state').textContent"),
        json!("live")
    );
    browser.wait_until(&shows_expected, &format!("#connections-open to still read {expected}"));

    let png = browser.screenshot();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-artifacts");
    std::fs::create_dir_all(dir).unwrap();
    let path = format!("{dir}/{artifact}");
    std::fs::write(&path, &png).unwrap();
    assert_valid_png(&png, &path);

    // Every request the page made (the page, its stream, a favicon) went to the server.
    let mut urls: Vec<String> = browser
        .events("Network.requestWillBeSent")
        .iter()
        .map(|e| e["request"]["url"].as_str().unwrap_or_default().to_owned())
        .collect();
    urls.extend(
        browser
            .events("Network.webSocketCreated")
            .iter()
            .map(|e| e["url"].as_str().unwrap_or_default().to_owned()),
    );
    assert!(urls.contains(&format!("http://{origin}/dashboard")), "{urls:?}");
    assert!(urls.contains(&format!("ws://{origin}/dashboard/stream")), "{urls:?}");
    for url in &urls {
        assert!(
            url.starts_with(&format!("http://{origin}/")) || url.starts_with(&format!("ws://{origin}/")),
            "the page asked another origin: {url} (all: {urls:?})"
        );
    }
}

/// A PNG (signature, IHDR, IEND) of the 1280x800 window with more than a blank page's bytes.
fn assert_valid_png(png: &[u8], path: &str) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{path} is not a PNG");
    assert_eq!(&png[12..16], b"IHDR", "{path}: no IHDR first");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 800), "{path}: screenshot size");
    assert!(png.ends_with(b"IEND\xae\x42\x60\x82"), "{path}: no IEND last");
    assert!(
        png.len() > 20_000,
        "{path}: only {} bytes, a near-blank page",
        png.len()
    );
}
