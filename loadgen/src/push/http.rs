//! Publishing over HTTP: the lane's due publishes go out as `POST /publish/{topic}` requests
//! (or `POST /publish` batches), each on a new TCP (or TLS) connection, at most `--max-pending`
//! at once.
//!
//! The server answers one request per connection and closes it. The client reads to EOF so
//! the server closes first: its own ports then do not pile up in TIME_WAIT at high rates.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Range;
use std::rc::Rc;

use super::envelope;
use super::publish::{self, Publish};
use super::topic_name;
use crate::conn::{io_reason, tcp_connect};
use crate::engine::Engine;
use crate::local::Notify;
use crate::plan::HttpPublishing;
use crate::transport::Transport;

/// Longest reply accepted.
const MAX_REPLY: usize = 64 * 1024;
/// Bytes read at a time.
const READ_CHUNK: usize = 4096;

/// The lane's publishes waiting for a request.
#[derive(Default)]
pub struct Outbox {
    queue: RefCell<VecDeque<Publish>>,
    ready: Notify,
}

impl Outbox {
    /// Queues `publish` and wakes the sender.
    pub fn push(&self, publish: Publish) {
        self.queue.borrow_mut().push_back(publish);
        self.ready.notify();
    }

    fn take(&self, most: usize) -> Vec<Publish> {
        let mut queue = self.queue.borrow_mut();
        let n = most.min(queue.len());
        queue.drain(..n).collect()
    }
}

/// Requests in flight and a wake-up for each that ends.
#[derive(Default)]
struct InFlight {
    count: Cell<usize>,
    ended: Notify,
}

/// Sends the lane's publishes until the window ends, then waits for the requests in flight;
/// publishes still queued then were never sent and count as failed.
pub async fn run(engine: Rc<Engine>, outbox: Rc<Outbox>) {
    let batch_most = settings(&engine).batch;
    let end = monoio::time::Instant::from_std(engine.timeline().window_end);
    let in_flight = Rc::new(InFlight::default());
    let mut number = 0u64;
    'send: loop {
        while in_flight.count.get() >= engine.plan.max_pending {
            in_flight.ended.notified().await;
        }
        let batch = loop {
            if !publish::open(&engine) {
                break 'send;
            }
            let batch = outbox.take(batch_most);
            if !batch.is_empty() {
                break batch;
            }
            if monoio::time::timeout_at(end, outbox.ready.notified()).await.is_err() {
                break 'send;
            }
        };
        in_flight.count.set(in_flight.count.get() + 1);
        let lane = engine.lane;
        let target = number * lane.total as u64 + lane.index as u64;
        number += 1;
        let (engine, in_flight) = (engine.clone(), in_flight.clone());
        monoio::spawn(async move {
            match exchange(&engine, target, &batch).await {
                Ok(()) => batch.iter().for_each(|p| publish::acked(&engine, p.topic)),
                Err(reason) => publish::failed(&engine, &reason, batch.len() as u64),
            }
            in_flight.count.set(in_flight.count.get() - 1);
            in_flight.ended.notify();
        });
    }
    let left = outbox.queue.borrow_mut().drain(..).count();
    publish::failed(&engine, "publish_not_sent", left as u64);
    while in_flight.count.get() > 0 {
        in_flight.ended.notified().await;
    }
}

/// The run's HTTP publishing settings.
fn settings(engine: &Engine) -> &HttpPublishing {
    engine
        .plan
        .push
        .as_ref()
        .and_then(|p| p.http())
        .expect("HTTP publishing")
}

/// One request and its reply, on a connection to the `target`-th (source, destination) pair.
async fn exchange(engine: &Engine, target: u64, batch: &[Publish]) -> Result<(), String> {
    let http = settings(engine);
    let timeouts = engine.plan.timeouts;
    let (src, dst) = http.targets.pick(target);
    let tcp = match monoio::time::timeout(timeouts.connect, tcp_connect(src, dst)).await {
        Err(_) => return Err("publish_connect_timeout".into()),
        Ok(Err(e)) => return Err(format!("publish_{}", io_reason(&e))),
        Ok(Ok(tcp)) => tcp,
    };
    let req = request(engine, http, dst, batch);
    let mut reply = Vec::new();
    let talk = async {
        let mut stream = Transport::open(tcp, http.tls.as_ref())
            .await
            .map_err(|reason| format!("publish_{reason}"))?;
        stream
            .write_all(req)
            .await
            .map_err(|e| format!("publish_{}", io_reason(&e)))?;
        publish::written(engine, batch.len() as u64);
        read_to_eof(&mut stream, &mut reply).await
    };
    let talked = monoio::time::timeout(timeouts.handshake, talk).await;
    let eof = matches!(talked, Ok(Ok(())));
    let (status, body) = match (parse_reply(&reply, eof)?, talked) {
        // Complete, whether or not the server closed in time.
        (Some(done), _) => done,
        (None, Err(_)) => return Err("publish_timeout".into()),
        (None, Ok(Err(reason))) => return Err(reason),
        (None, Ok(Ok(()))) => return Err("publish_eof".into()),
    };
    if status != 200 {
        return Err(format!("publish_status_{status}"));
    }
    let body = &reply[body];
    let checked = if http.batch > 1 {
        envelope::check_batch_ack(body, batch.len())
    } else {
        envelope::check_ack(body)
    };
    checked.map_err(str::to_string)
}

/// The request for `batch`: one publish on `POST /publish/{topic}`, or (with `--publish-batch`
/// above 1) a JSON batch on `POST /publish`.
fn request(engine: &Engine, http: &HttpPublishing, dst: SocketAddr, batch: &[Publish]) -> Vec<u8> {
    let mut body = Vec::new();
    let (path, content_type) = if http.batch > 1 {
        let mut data = Vec::new();
        for (i, p) in batch.iter().enumerate() {
            data.clear();
            publish::encode(engine, p, &mut data);
            envelope::batch_item(&mut body, i == 0, &topic_name(p.topic), &data);
        }
        envelope::batch_end(&mut body);
        (format!("{}/publish", http.url.path), "application/json")
    } else {
        let p = &batch[0];
        publish::encode(engine, p, &mut body);
        (
            format!("{}/publish/{}", http.url.path, topic_name(p.topic)),
            "text/plain; charset=utf-8",
        )
    };
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        http.url.host_header(dst.port()),
        body.len()
    );
    for header in &engine.plan.headers {
        out.push_str(header);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Reads into `into` until the server closes; the bytes read stay in `into` if the future is
/// dropped half way (a timeout).
async fn read_to_eof(stream: &mut Transport, into: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = Vec::with_capacity(READ_CHUNK);
    loop {
        let (res, back) = stream.read_append(chunk).await;
        chunk = back;
        match res {
            Ok(0) => return Ok(()),
            Ok(_) if into.len() + chunk.len() > MAX_REPLY => return Err("publish_bad_reply".into()),
            Ok(_) => into.extend_from_slice(&chunk),
            Err(e) => return Err(format!("publish_{}", io_reason(&e))),
        }
        chunk.clear();
    }
}

/// A complete reply in `buf`: its status and where its body is. Without `Content-Length` the
/// body runs to EOF, so the reply is complete only once `eof` is true.
fn parse_reply(buf: &[u8], eof: bool) -> Result<Option<(u16, Range<usize>)>, String> {
    const BAD: &str = "publish_bad_reply";
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(BAD.into()),
    };
    let status = response.code.ok_or(BAD)?;
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
        });
    Ok(match length {
        Some(None) => return Err(BAD.into()),
        Some(Some(len)) if buf.len() >= head + len => Some((status, head..head + len)),
        Some(Some(_)) => None,
        None if eof => Some((status, head..buf.len())),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_complete_with_its_whole_body() {
        let reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"seq\":1}";
        let (status, body) = parse_reply(reply, false).unwrap().unwrap();
        assert_eq!((status, &reply[body]), (200, &b"{\"seq\":1}"[..]));
        for cut in 0..reply.len() {
            assert_eq!(parse_reply(&reply[..cut], false), Ok(None), "cut at {cut}");
        }
        let to_eof = b"HTTP/1.1 503 Busy\r\n\r\nlater";
        assert_eq!(parse_reply(to_eof, false), Ok(None));
        let (status, body) = parse_reply(to_eof, true).unwrap().unwrap();
        assert_eq!((status, &to_eof[body]), (503, &b"later"[..]));
        assert_eq!(
            parse_reply(b"SMTP ready\r\n\r\n", true),
            Err("publish_bad_reply".into())
        );
        assert_eq!(
            parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", true),
            Err("publish_bad_reply".into())
        );
    }
}
