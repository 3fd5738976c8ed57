//! Target `push`: what push clients send: topic names, `?topics=&since=` queries, `EPOCH:SEQ`
//! resume points and the JSON commands of connected subscribers.

use ringcast::push::control::{parse_command, Command, CommandError, Request};
use ringcast::push::query::{parse_initial_topics, Since};
use ringcast::push::topic::{validate_topic, TopicError, MAX_TOPIC_LEN};
use serde::de::IgnoredAny;
use serde_json::Value;

/// The per-connection topic limit the target runs with (`push_max_topics_per_connection`).
pub const MAX_TOPICS: usize = 8;

/// Runs every push parser on `data` (as text; bytes that are not UTF-8 become U+FFFD, as
/// neither a text frame nor a request target can carry them).
///
/// Checks: a topic name is accepted exactly when it is 1 to 128 bytes of `A-Z a-z 0-9 _ - . ~
/// /`, and a refusal names the first bad character where it is; a resume point prints back to
/// itself; an accepted query holds at most [`MAX_TOPICS`] distinct valid topics, each named in
/// a `topics=` list; an accepted command is a JSON object whose `op`, topics, data and `ref`
/// are the ones parsed, and a refused one carries a known error code (`bad_json` whenever
/// `serde_json` itself rejects the text).
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_topic(&text);
    check_since(&text);
    check_query(&text);
    check_command(&text);
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-.~/".contains(c)
}

fn check_topic(name: &str) {
    let result = validate_topic(name);
    let valid = !name.is_empty() && name.len() <= MAX_TOPIC_LEN && name.chars().all(allowed);
    assert_eq!(result.is_ok(), valid, "{name:?}");
    match result {
        Ok(()) => {}
        Err(TopicError::Empty) => assert!(name.is_empty()),
        Err(TopicError::TooLong(len)) => assert!(len == name.len() && len > MAX_TOPIC_LEN),
        Err(error @ TopicError::BadCharacter { at, found, .. }) => {
            assert!(name.len() <= MAX_TOPIC_LEN);
            assert!(name[at..].starts_with(found) && !allowed(found));
            assert!(name[..at].chars().all(allowed));
            assert!(!error.to_string().is_empty());
        }
    }
}

fn check_since(text: &str) {
    if let Some(point) = Since::parse(text) {
        assert_eq!(Since::parse(&format!("{}:{}", point.epoch, point.seq)), Some(point));
        assert!(text.contains(':'));
    }
}

fn check_query(text: &str) {
    match parse_initial_topics(Some(text), MAX_TOPICS) {
        Ok(initial) => {
            assert!(initial.topics.len() <= MAX_TOPICS);
            let named: Vec<&str> = text
                .split('&')
                .filter_map(|pair| pair.strip_prefix("topics="))
                .flat_map(|list| list.split(','))
                .collect();
            for (i, (topic, _)) in initial.topics.iter().enumerate() {
                assert!(validate_topic(topic).is_ok());
                assert!(named.contains(&topic.as_str()), "{topic:?} not asked for");
                assert!(!initial.topics[..i].iter().any(|(t, _)| t == topic), "{topic:?} twice");
            }
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
}

fn check_command(text: &str) {
    // The syntax check the parser makes: unknown fields are skipped, not decoded, so a lone
    // surrogate escape there is no error (it is one where `serde_json::Value` decodes it).
    let syntax_ok = serde_json::from_str::<IgnoredAny>(text).is_ok();
    match parse_command(text) {
        Ok(request) => {
            assert!(syntax_ok, "an accepted command is JSON");
            let topics = match &request.command {
                Command::Subscribe { topics } => topics.iter().map(|(t, _)| t.clone()).collect(),
                Command::Unsubscribe { topics } => topics.clone(),
                Command::Publish { topic, .. } => vec![topic.clone()],
            };
            assert!(topics.iter().all(|t| validate_topic(t).is_ok()));
            if let Ok(json) = serde_json::from_str::<Value>(text) {
                check_fields(&json, &request);
            }
        }
        Err(CommandError { code, message, .. }) => {
            assert!(
                matches!(code, "bad_json" | "bad_command" | "bad_topic" | "unknown_op"),
                "{code}"
            );
            assert!(!message.is_empty());
            if !syntax_ok {
                assert_eq!(code, "bad_json");
            }
        }
    }
}

/// An accepted command against the same text decoded as a plain JSON value.
fn check_fields(json: &Value, request: &Request) {
    assert_eq!(request.reference.as_ref(), json.get("ref").filter(|r| !r.is_null()));
    let op = json["op"].as_str();
    match &request.command {
        Command::Subscribe { .. } => assert_eq!(op, Some("subscribe")),
        Command::Unsubscribe { .. } => assert_eq!(op, Some("unsubscribe")),
        Command::Publish { data, .. } => {
            assert_eq!(op, Some("publish"));
            assert_eq!(json["data"].as_str(), Some(data.as_str()));
        }
    }
}
