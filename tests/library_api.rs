//! The embeddable API: a custom handler in-process, its context, metadata, server-initiated
//! close, and the close callback's information.

use std::sync::mpsc;
use std::time::Duration;

use ringcast::config::{Config, CoreSelection};
use ringcast::handler::{CloseInfo, ClosedBy, Context, Handler, Message, SendError};
use ringcast::metrics::Counter;
use ringcast::proto::close::CloseCode;
use ringcast::Server;
use tungstenite::Message as WsMessage;

/// Greets with what it knows of the connection; `close` makes the server close with 4001.
struct Probe {
    closes: mpsc::Sender<(CloseInfo, Result<(), SendError>)>,
    send_after_close: Option<Result<(), SendError>>,
}

impl Handler for Probe {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let meta = cx.meta();
        let greeting = format!(
            "path={} query={} token={} core={}",
            meta.path(),
            meta.query().unwrap_or("-"),
            meta.header("x-token").unwrap_or("-"),
            cx.core()
        );
        cx.send(Message::Text(&greeting)).unwrap();
    }

    fn on_message(&mut self, cx: &mut Context<'_>, message: Message<'_>) {
        if message == Message::Text("close") {
            cx.send(Message::Text("closing now")).unwrap();
            cx.close(CloseCode(4001), "asked to");
            self.send_after_close = Some(cx.send(Message::Text("must not be sent")));
        } else {
            cx.send(message).unwrap();
        }
    }

    fn on_close(&mut self, _cx: &mut Context<'_>, info: &CloseInfo) {
        let attempt = self.send_after_close.take().unwrap_or(Ok(()));
        self.closes.send((info.clone(), attempt)).unwrap();
    }
}

#[test]
fn custom_handler_sees_metadata_and_closes_first() {
    let (tx, rx) = mpsc::channel();
    let mut config = Config::embedded();
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.cores = CoreSelection::Count(1);
    config.keep_headers = vec!["X-Token".into()];
    config.log_level = "off".into();
    let server = Server::new(config)
        .start(move |_core| Probe {
            closes: tx.clone(),
            send_after_close: None,
        })
        .expect("start in-process");
    let url = format!("ws://{}/room?name=ada", server.local_addrs()[0]);
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    request.headers_mut().insert("X-Token", "s3cret".parse().unwrap());
    let (mut ws, _) = tungstenite::connect(request).unwrap();
    assert_eq!(
        ws.read().unwrap(),
        WsMessage::text("path=/room query=name=ada token=s3cret core=0")
    );
    ws.send(WsMessage::binary(vec![1, 2, 3])).unwrap();
    assert_eq!(ws.read().unwrap(), WsMessage::binary(vec![1, 2, 3]));
    ws.send(WsMessage::text("close")).unwrap();
    assert_eq!(ws.read().unwrap(), WsMessage::text("closing now"));
    match ws.read().unwrap() {
        WsMessage::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 4001);
            assert_eq!(frame.reason.as_str(), "asked to");
        }
        other => panic!("expected the server's close frame, got {other:?}"),
    }
    // tungstenite answers the close; the server then closes TCP.
    assert!(matches!(ws.read(), Err(tungstenite::Error::ConnectionClosed)));
    let (info, attempt) = rx.recv_timeout(Duration::from_secs(10)).expect("on_close was called");
    assert!(
        matches!(attempt, Err(SendError::Closed(_))),
        "send after close must fail, got {attempt:?}"
    );
    assert_eq!(info.closed_by, ClosedBy::Server);
    assert_eq!(info.code_sent, Some(CloseCode(4001)));
    assert_eq!(info.code_received, Some(CloseCode(4001)));
    assert_eq!(info.error, None);
    assert_eq!((info.stats.messages_in, info.stats.messages_out), (2, 3));
}

/// Pushes 64 KiB messages when asked, until the engine refuses (slow consumer).
struct Flooder {
    refusals: mpsc::Sender<(usize, SendError)>,
}

impl Handler for Flooder {
    fn on_message(&mut self, cx: &mut Context<'_>, _message: Message<'_>) {
        let chunk = vec![9u8; 65536];
        for sent in 0..10_000 {
            if let Err(refused) = cx.send(Message::Binary(&chunk)) {
                self.refusals.send((sent, refused)).unwrap();
                return;
            }
        }
    }
}

#[test]
fn a_consumer_too_slow_for_its_queue_is_closed_with_1008() {
    let (tx, rx) = mpsc::channel();
    let mut config = Config::embedded();
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.cores = CoreSelection::Count(1);
    config.max_queued_bytes = 256 * 1024;
    config.log_level = "off".into();
    let server = Server::new(config)
        .start(move |_core| Flooder { refusals: tx.clone() })
        .unwrap();
    let (mut ws, _) = tungstenite::connect(format!("ws://{}/", server.local_addrs()[0])).unwrap();
    ws.send(WsMessage::text("flood me")).unwrap();
    let (accepted, refusal) = rx.recv_timeout(Duration::from_secs(10)).expect("the flood was refused");
    assert!(matches!(refusal, SendError::SlowConsumer(_)), "{refusal:?}");
    assert_eq!(
        accepted, 3,
        "a fourth 64 KiB message would overflow 256 KiB by its frame headers"
    );
    let mut received = 0;
    let close = loop {
        match ws.read().unwrap() {
            WsMessage::Binary(data) => {
                assert_eq!(data.len(), 65536);
                received += 1;
            }
            WsMessage::Close(frame) => break frame.expect("a close code"),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(received, accepted, "everything queued before the close is delivered");
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(server.registry().total(Counter::SlowConsumers), 1);
}
