//! Push mode as a library: a custom [`PushPolicy`] authorises subscriptions, rewrites and
//! refuses publishes; the embedding application publishes through the hub directly.

mod common;

use ringcast::api::ConnMeta;
use ringcast::config::{Config, CoreSelection};
use ringcast::push::envelope::Payload;
use ringcast::push::{Publish, PublishSource, PushPolicy, PushServer, Refusal};
use serde_json::json;

use common::push::{post, Subscriber};

/// Subscriptions to `private/...` need `?key=secret`; publishes are upper-cased, and ones
/// saying "spam" are refused.
struct Moderated;

impl PushPolicy for Moderated {
    fn authorize_subscribe(&mut self, meta: &ConnMeta, topic: &str) -> Result<(), Refusal> {
        let has_key = meta.query().is_some_and(|q| q.split('&').any(|kv| kv == "key=secret"));
        match topic.starts_with("private/") && !has_key {
            true => Err(Refusal("private topics need a key".into())),
            false => Ok(()),
        }
    }

    fn on_publish(&mut self, publish: &mut Publish, source: PublishSource<'_>) -> Result<(), Refusal> {
        assert!(matches!(source, PublishSource::Http(_)), "only HTTP publishes here");
        let Payload::Text(text) = &publish.payload else {
            return Ok(());
        };
        if text.contains("spam") {
            return Err(Refusal("no spam".into()));
        }
        publish.payload = Payload::Text(text.to_uppercase());
        Ok(())
    }
}

#[test]
fn a_policy_authorises_subscriptions_and_rewrites_or_refuses_publishes() {
    let mut config = Config::embedded();
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.cores = CoreSelection::Count(2);
    config.log_level = "off".into();
    let running = PushServer::new(config).with_policy(|_core| Moderated).start().unwrap();
    let addr = running.server().local_addrs()[0];

    let mut outsider = Subscriber::connect(addr, "/ws?topics=private/room");
    let refused = outsider.next_json();
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("forbidden"))
    );
    let mut insider = Subscriber::connect(addr, "/ws?topics=private/room&key=secret");
    insider.expect_subscribed("private/room");

    let (status, body) = post(addr, "/publish/private/room", "text/plain", b"hello");
    assert_eq!(status, 200, "{body}");
    assert_eq!(insider.expect_message().3, "HELLO", "the policy rewrote the payload");
    let (status, body) = post(addr, "/publish/private/room", "text/plain", b"buy spam");
    assert_eq!((status, body.as_str()), (403, "no spam\n"));

    // The application publishes itself, with no HTTP request.
    let at = running
        .hub()
        .publish_local("private/room", &Payload::Text("from the app".into()))
        .unwrap();
    assert_eq!(at.seq, 2, "the refused publish took no sequence number");
    assert_eq!(insider.expect_message().3, "from the app");
    outsider.command(json!({"op":"subscribe","topics":["public"]}));
    outsider.expect_subscribed("public");

    drop((insider, outsider));
    running.server().shutdown_handle().shutdown();
    running.join().unwrap();
}
