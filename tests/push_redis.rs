//! Push mode across nodes through a real `redis-server` (Debian's package; `.ci/run` installs
//! it): two ringcast processes, publish on one and receive on the other, resume on the other
//! node, and Redis killed and restarted mid-run.

mod common;

use common::push::{publish, Subscriber};
use common::redis::{wait_ready, RedisServer};
use common::ServerProcess;

fn node(redis: &str) -> ServerProcess {
    let server = ServerProcess::start(
        "uring",
        &["--mode", "push", "--cores", "2", "--redis", redis, "--push-ws-publish"],
    );
    wait_ready(&server, "redis: connected");
    server
}

/// A redis-server, two nodes on it, and a subscriber of `topic` on each.
fn two_nodes_subscribed_to(topic: &str) -> (RedisServer, ServerProcess, ServerProcess, Subscriber, Subscriber) {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis.url()), node(&redis.url()));
    let path = format!("/ws?topics={topic}");
    let (mut on_a, mut on_b) = (Subscriber::connect(a.addr, &path), Subscriber::connect(b.addr, &path));
    on_a.expect_subscribed(topic);
    on_b.expect_subscribed(topic);
    (redis, a, b, on_a, on_b)
}

#[test]
fn a_publish_on_one_node_reaches_subscribers_on_the_other_and_resumes_there() {
    let (redis, a, b, mut on_a, mut on_b) = two_nodes_subscribed_to("scores");
    let mut epoch = String::new();
    for i in 1..=20u64 {
        let via = if i % 2 == 0 { &a } else { &b };
        let reply = publish(via.addr, "scores", &format!("goal {i}"));
        assert_eq!(reply["seq"], i, "Redis sequences publishes from both nodes: {reply}");
        epoch = reply["epoch"].as_str().unwrap().to_owned();
    }
    for subscriber in [&mut on_a, &mut on_b] {
        for i in 1..=20u64 {
            let (_, got_epoch, seq, data) = subscriber.expect_message();
            assert_eq!(
                (got_epoch.as_str(), seq, data),
                (epoch.as_str(), i, format!("goal {i}"))
            );
        }
    }
    // A WebSocket publisher on B: sequenced in Redis too, acknowledged, delivered on A.
    let mut publisher = Subscriber::connect(b.addr, "/ws");
    publisher.command(serde_json::json!({"op":"publish","topic":"scores","data":"from ws","ref":"p"}));
    let ack = publisher.next_json();
    assert_eq!(
        (ack["type"].as_str(), ack["seq"].as_u64(), ack["ref"].as_str()),
        (Some("published"), Some(21), Some("p")),
        "{ack}"
    );
    assert_eq!(on_a.expect_message().3, "from ws");
    assert_eq!(on_b.expect_message().2, 21);
    // A client of A that has 1..=21 leaves; 22..=25 are published on A; it resumes on B.
    drop(on_a);
    for i in 22..=25 {
        publish(a.addr, "scores", &format!("goal {i}"));
    }
    let mut moved = Subscriber::connect(b.addr, &format!("/ws?topics=scores&since=scores:{epoch}:21"));
    let (_, now) = moved.expect_subscribed("scores");
    assert_eq!(now, 25);
    let replayed: Vec<u64> = (0..4).map(|_| moved.expect_message().2).collect();
    assert_eq!(
        replayed,
        [22, 23, 24, 25],
        "missed messages come from B's history, no gap"
    );
    assert_eq!(b.metric("ringcast_redis_connected"), 1);
    // A node started after all this loads the history from Redis when it connects.
    let c = node(&redis.url());
    let mut late = Subscriber::connect(c.addr, &format!("/ws?topics=scores&since=scores:{epoch}:22"));
    assert_eq!(late.expect_subscribed("scores"), (epoch.clone(), 25));
    let replayed: Vec<u64> = (0..3).map(|_| late.expect_message().2).collect();
    assert_eq!(replayed, [23, 24, 25], "resynced from the Redis stream");
}

#[test]
fn losing_redis_keeps_local_delivery_and_the_link_comes_back_by_itself() {
    let (redis, a, b, mut on_a, mut on_b) = two_nodes_subscribed_to("feed");
    let first = publish(a.addr, "feed", "before");
    on_a.expect_message();
    on_b.expect_message();

    let port = redis.stop();
    let degraded = wait_ready(&a, "degraded: redis: unreachable");
    assert!(degraded.contains("local delivery only"), "{degraded}");
    assert_eq!(a.metric("ringcast_redis_connected"), 0);
    assert!(!a.json_events("redis_down").is_empty(), "a log line says so");
    let local = publish(a.addr, "feed", "during");
    assert_ne!(local["epoch"], first["epoch"], "sequenced locally: a new epoch");
    let (_, epoch, seq, data) = on_a.expect_message();
    assert_eq!(
        (epoch.as_str(), seq, data.as_str()),
        (local["epoch"].as_str().unwrap(), 1, "during")
    );
    assert!(a.metric("ringcast_redis_local_fallbacks_total") >= 1);

    let _redis = RedisServer::start_on(port);
    wait_ready(&a, "redis: connected");
    wait_ready(&b, "redis: connected");
    let back = publish(b.addr, "feed", "after");
    for subscriber in [&mut on_a, &mut on_b] {
        let (_, epoch, seq, data) = subscriber.expect_message();
        assert_eq!(
            (epoch.as_str(), seq, data.as_str()),
            (back["epoch"].as_str().unwrap(), back["seq"].as_u64().unwrap(), "after")
        );
    }
    assert!(a.metric("ringcast_redis_connects_total") >= 2, "it reconnected");
}
