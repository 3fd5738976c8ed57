//! `POST /publish/{topic}` and `POST /publish` (a batch): reading the request into
//! [`Publish`]es, and the JSON replies.

use serde::Deserialize;

use super::envelope::Payload;
use super::hub::{Sequenced, TopicLimit};
use super::policy::Publish;
use super::topic::validate_topic;
use crate::api::Response;
use crate::proto::handshake::Request;

/// The most messages one batch may carry.
pub const MAX_BATCH: usize = 1000;

/// Whether `path` is one of the publish endpoints.
pub fn is_publish_path(path: &str) -> bool {
    path == "/publish" || path.starts_with("/publish/")
}

/// The publishes a request asks for, or the response refusing it.
pub fn parse_publish(request: &Request, body: &[u8]) -> Result<Vec<Publish>, Response> {
    if request.method != "POST" {
        return Err(Response::text(405, "publish with POST\n"));
    }
    if let Some(topic) = request.path.strip_prefix("/publish/") {
        validate_topic(topic).map_err(|e| Response::text(400, format!("{e}\n")))?;
        let binary = request
            .header("content-type")
            .is_some_and(|v| v.starts_with(b"application/octet-stream"));
        let payload = match binary {
            true => Payload::Binary(body.to_vec()),
            false => Payload::Text(String::from_utf8(body.to_vec()).map_err(|_| {
                Response::text(
                    400,
                    "text payload is not UTF-8; send binary as application/octet-stream\n",
                )
            })?),
        };
        return Ok(vec![Publish {
            topic: topic.to_owned(),
            payload,
        }]);
    }
    parse_batch(body)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    messages: Vec<BatchItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchItem {
    topic: String,
    data: String,
}

fn parse_batch(body: &[u8]) -> Result<Vec<Publish>, Response> {
    let batch: Batch = serde_json::from_slice(body).map_err(|e| {
        Response::text(
            400,
            format!("expected {{\"messages\":[{{\"topic\":...,\"data\":...}}]}}: {e}\n"),
        )
    })?;
    if batch.messages.is_empty() || batch.messages.len() > MAX_BATCH {
        return Err(Response::text(
            400,
            format!("a batch holds 1 to {MAX_BATCH} messages\n"),
        ));
    }
    batch
        .messages
        .into_iter()
        .map(|item| {
            validate_topic(&item.topic).map_err(|e| Response::text(400, format!("{e}\n")))?;
            Ok(Publish {
                topic: item.topic,
                payload: Payload::Text(item.data),
            })
        })
        .collect()
}

/// The outcome of one publish.
pub type Outcome = Result<Sequenced, TopicLimit>;

fn outcome_json(topic: &str, outcome: &Outcome) -> serde_json::Value {
    match outcome {
        Ok(Sequenced { epoch, seq }) => serde_json::json!({"topic": topic, "epoch": epoch.to_string(), "seq": seq}),
        Err(error) => serde_json::json!({"topic": topic, "error": error.to_string()}),
    }
}

/// The reply to a publish request: one object for `/publish/{topic}` (503 if it failed), a
/// `results` list for a batch (200, failed items carry `error`).
pub fn publish_response(single: bool, results: &[(String, Outcome)]) -> Response {
    if single {
        let (topic, outcome) = &results[0];
        let status = if outcome.is_ok() { 200 } else { 503 };
        return Response::json(status, outcome_json(topic, outcome).to_string());
    }
    let list: Vec<_> = results.iter().map(|(t, o)| outcome_json(t, o)).collect();
    Response::json(200, serde_json::json!({ "results": list }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::test_request;
    use crate::push::envelope::Epoch;

    fn request(head: &str) -> Request {
        test_request(head)
    }

    #[test]
    fn single_and_batch_publishes_parse() {
        let text = request("POST /publish/a/b HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            parse_publish(&text, b"hi").unwrap(),
            vec![Publish {
                topic: "a/b".into(),
                payload: Payload::Text("hi".into())
            }]
        );
        let binary = request("POST /publish/a HTTP/1.1\r\nContent-Type: application/octet-stream\r\n\r\n");
        assert_eq!(
            parse_publish(&binary, &[0xff]).unwrap()[0].payload,
            Payload::Binary(vec![0xff])
        );
        let batch = request("POST /publish HTTP/1.1\r\n\r\n");
        let body = br#"{"messages":[{"topic":"a","data":"1"},{"topic":"b","data":"2"}]}"#;
        assert_eq!(parse_publish(&batch, body).unwrap().len(), 2);
    }

    #[test]
    fn bad_publishes_get_their_status() {
        let status = |head: &str, body: &[u8]| parse_publish(&request(head), body).unwrap_err().status;
        assert_eq!(status("GET /publish/a HTTP/1.1\r\n\r\n", b""), 405);
        assert_eq!(status("POST /publish/a:b HTTP/1.1\r\n\r\n", b""), 400);
        assert_eq!(status("POST /publish/a HTTP/1.1\r\n\r\n", &[0xff]), 400);
        assert_eq!(status("POST /publish HTTP/1.1\r\n\r\n", b"{}"), 400);
        assert_eq!(status("POST /publish HTTP/1.1\r\n\r\n", br#"{"messages":[]}"#), 400);
        assert_eq!(
            status(
                "POST /publish HTTP/1.1\r\n\r\n",
                br#"{"messages":[{"topic":"a b","data":"x"}]}"#
            ),
            400
        );
    }

    #[test]
    fn replies_carry_epoch_and_seq() {
        let ok: Outcome = Ok(Sequenced {
            epoch: Epoch(255),
            seq: 3,
        });
        let reply = publish_response(true, &[("a".into(), ok)]);
        assert_eq!(reply.status, 200);
        let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"topic":"a","epoch":"00000000000000ff","seq":3})
        );
        let full = publish_response(true, &[("a".into(), Err(TopicLimit::Reached))]);
        assert_eq!(full.status, 503);
    }
}
