//! Cross-core delivery: a handler on one core sends to a connection on the other core
//! (`Context::send_to`), and a thread outside the cores sends through a `DeliveryHandle`, under
//! both data paths. Frames from one source to one connection keep their order.

use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringcast::config::{Config, CoreSelection, IoMode};
use ringcast::handler::{ConnId, Context, Handler, Message};
use ringcast::metrics::Counter;
use ringcast::proto::frame::{server_frame, OpCode};
use ringcast::{RunningServer, Server};
use tungstenite::{Message as WsMessage, WebSocket};

/// Every connection the server opened, in order (the test's directory; a lock is fine here).
type Directory = Arc<Mutex<Vec<ConnId>>>;

/// `send N TEXT...` sends each word of TEXT, in order, to the N-th opened connection.
struct Relay {
    directory: Directory,
}

impl Handler for Relay {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let mut directory = self.directory.lock().unwrap();
        directory.push(cx.id());
        let index = directory.len() - 1;
        cx.send(Message::Text(&format!("{index} {}", cx.core()))).unwrap();
    }

    fn on_message(&mut self, cx: &mut Context<'_>, message: Message<'_>) {
        let Message::Text(text) = message else { return };
        let mut words = text.split(' ');
        assert_eq!(words.next(), Some("send"));
        let index: usize = words.next().unwrap().parse().unwrap();
        let to = self.directory.lock().unwrap()[index];
        for word in words {
            cx.send_to(to, server_frame(OpCode::Text, word.as_bytes())).unwrap();
        }
    }
}

type Client = WebSocket<TcpStream>;

fn start(io: IoMode) -> (RunningServer, Directory) {
    let mut config = Config::embedded();
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.cores = CoreSelection::Count(2);
    config.io = io;
    config.log_level = "off".into();
    let directory = Directory::default();
    let shared = directory.clone();
    let server = Server::new(config)
        .start(move |_core| Relay {
            directory: shared.clone(),
        })
        .expect("start");
    (server, directory)
}

/// Connects until one client sits on each core; returns (index, client) for cores 0 and 1.
fn one_client_per_core(server: &RunningServer) -> [(usize, Client); 2] {
    let url = format!("ws://{}/", server.local_addrs()[0]);
    let mut found: [Option<(usize, Client)>; 2] = [None, None];
    for _ in 0..200 {
        let stream = TcpStream::connect(server.local_addrs()[0]).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (mut client, _) = tungstenite::client(url.as_str(), stream).unwrap();
        let greeting = client.read().unwrap().into_text().unwrap();
        let (index, core) = greeting.split_once(' ').unwrap();
        let core: usize = core.parse().unwrap();
        if found[core].is_none() {
            found[core] = Some((index.parse().unwrap(), client));
        }
        if found.iter().all(Option::is_some) {
            return found.map(Option::unwrap);
        }
    }
    panic!("SO_REUSEPORT never placed a connection on each core");
}

fn expect_words(client: &mut Client, words: impl Iterator<Item = String>) {
    for word in words {
        assert_eq!(client.read().unwrap(), WsMessage::text(word));
    }
}

fn each_io(test: impl Fn(IoMode)) {
    for io in [IoMode::Uring, IoMode::Epoll] {
        test(io);
    }
}

#[test]
fn handlers_send_to_connections_on_the_other_core_in_order() {
    each_io(|io| {
        let (server, _) = start(io);
        let [(index0, mut on0), (index1, mut on1)] = one_client_per_core(&server);
        let words = |tag: &'static str| (0..200).map(move |i| format!("{tag}{i}"));
        let batch = |tag: &'static str| words(tag).collect::<Vec<_>>().join(" ");
        on0.send(WsMessage::text(format!("send {index1} {}", batch("a"))))
            .unwrap();
        on1.send(WsMessage::text(format!("send {index0} {}", batch("b"))))
            .unwrap();
        // One message per word, so many deliveries also span loop turns.
        for i in 0..50 {
            on0.send(WsMessage::text(format!("send {index1} c{i}"))).unwrap();
        }
        expect_words(&mut on1, words("a"));
        expect_words(&mut on1, (0..50).map(|i| format!("c{i}")));
        expect_words(&mut on0, words("b"));
        assert_eq!(server.registry().total(Counter::CrossCoreDelivered), 450);
        assert_eq!(server.registry().total(Counter::CrossCoreUndeliverable), 0);
        drop((on0, on1));
        server.shutdown_handle().shutdown();
        server.join().unwrap();
    });
}

#[test]
fn a_delivery_handle_reaches_any_core_from_another_thread() {
    each_io(|io| {
        let (server, directory) = start(io);
        let [(index0, mut on0), (index1, mut on1)] = one_client_per_core(&server);
        let (id0, id1) = {
            let directory = directory.lock().unwrap();
            (directory[index0], directory[index1])
        };
        let handle = server.delivery_handle();
        let sender = std::thread::spawn(move || {
            for i in 0..100 {
                let to = if i % 2 == 0 { id0 } else { id1 };
                handle
                    .send(to, server_frame(OpCode::Text, format!("h{i}").as_bytes()))
                    .unwrap();
            }
            let fan_out: Arc<[ConnId]> = vec![id1, id1].into();
            handle
                .send_many(1, fan_out, server_frame(OpCode::Text, b"twice"))
                .unwrap();
        });
        sender.join().unwrap();
        expect_words(&mut on0, (0..100).step_by(2).map(|i| format!("h{i}")));
        expect_words(&mut on1, (1..100).step_by(2).map(|i| format!("h{i}")));
        expect_words(&mut on1, ["twice".to_owned(), "twice".to_owned()].into_iter());
        assert_eq!(server.registry().total(Counter::CrossCoreDelivered), 102);
        drop((on0, on1));
        server.shutdown_handle().shutdown();
        server.join().unwrap();
    });
}
