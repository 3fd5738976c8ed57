//! The io_uring data path's hard cases, each forced on the real binary: the provided-buffer
//! ring running dry, the completion queue overflowing, a peer that resets while a send is in
//! flight, a send cut short (cancelled part way) whose rest must still arrive intact, and
//! recv cancellations racing completions under a pipelined flood.

mod common;

use std::io::{Read, Write};

use common::{client_frame, RawWs, ServerProcess};

/// A binary frame whose payload tells which connection and which message it is.
fn numbered(conn: u8, seq: u32, len: usize) -> Vec<u8> {
    let mut payload = vec![conn; len];
    payload[..4].copy_from_slice(&seq.to_be_bytes());
    payload
}

/// Each of `conns` connections pipelines `count` messages of `len` bytes (all written at once
/// by one thread, read back by another) and checks every echo, in order.
fn pipelined_echoes(server: &ServerProcess, conns: u8, count: u32, len: usize) {
    let workers: Vec<_> = (0..conns)
        .map(|conn| {
            let mut ws = RawWs::connect(server, "/", &[]);
            let mut writer = ws.stream.try_clone().unwrap();
            std::thread::spawn(move || {
                let sender = std::thread::spawn(move || {
                    let mut burst = Vec::new();
                    for seq in 0..count {
                        burst.extend(client_frame(0x82, &numbered(conn, seq, len)));
                    }
                    writer.write_all(&burst).unwrap();
                });
                for seq in 0..count {
                    let frame = ws.read_frame().expect("an echo");
                    assert_eq!(frame.payload, numbered(conn, seq, len), "connection {conn}, echo {seq}");
                }
                sender.join().unwrap();
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
}

#[test]
fn an_exhausted_buffer_ring_is_replenished_and_nothing_is_lost() {
    // Two 64-byte buffers per core: every burst runs the ring dry, ending each multishot recv
    // with ENOBUFS, which must be re-armed without losing or reordering a byte.
    let server = ServerProcess::start("uring", &["--uring-buffers", "2", "--uring-buffer-size", "64"]);
    pipelined_echoes(&server, 8, 200, 300);
    assert!(server.metric("ringcast_uring_buffers_exhausted_total") > 0);
    assert_eq!(server.metric("ringcast_messages_received_total"), 1600);
}

#[test]
fn an_overflowing_completion_queue_loses_no_completion() {
    // A completion queue of 4 entries (and so a submission queue of 4): a multishot recv
    // posts far more completions per turn, which the kernel keeps on its overflow list, and
    // more submissions are made per turn than fit, which wait in the backlog.
    let server = ServerProcess::start("uring", &["--uring-cq-entries", "4", "--uring-buffer-size", "64"]);
    pipelined_echoes(&server, 8, 200, 300);
    assert!(server.metric("ringcast_uring_cq_overflows_total") > 0);
    assert_eq!(server.metric("ringcast_messages_received_total"), 1600);
}

#[test]
fn pauses_and_resumes_race_completions_without_loss() {
    // 64 KiB echoes pause each connection's recv (replies pending) and re-arm it once written,
    // so cancellations constantly race completions already posted.
    let server = ServerProcess::start("uring", &[]);
    pipelined_echoes(&server, 4, 64, 65536);
}

const BIG: usize = 24 << 20;

/// A client that asks for a 24 MiB echo and does not read it: the server's send stays in flight.
fn stalled_big_echo(server: &ServerProcess) -> RawWs {
    let ws = RawWs::connect(server, "/", &[]);
    let mut writer = ws.stream.try_clone().unwrap();
    let payload: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    std::thread::spawn(move || writer.write_all(&client_frame(0x82, &payload)).unwrap())
        .join()
        .unwrap();
    server.wait_for_metric("ringcast_messages_sent_total", 1);
    ws.stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    ws
}

#[test]
fn a_peer_that_resets_mid_send_is_closed_and_freed() {
    let server = ServerProcess::start("uring", &["--max-message-size", "33554432"]);
    let ws = stalled_big_echo(&server);
    // SO_LINGER 0: closing sends a reset instead of a FIN.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: sets a socket option on our own socket with a valid linger struct.
    let set = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&ws.stream),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as u32,
        )
    };
    assert_eq!(set, 0);
    drop(ws);
    server.wait_for_metric("ringcast_reset_by_peer_total", 1);
    server.wait_for_log(|l| l.contains("\"event\":\"close\"") && l.contains("\"error\":\"reset\""));
    assert_eq!(server.metric("ringcast_connections_open"), 0);
    let (mut ws, _) = tungstenite::connect(server.url("/")).unwrap();
    ws.send(tungstenite::Message::text("after the reset")).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("after the reset"));
}

#[test]
fn a_send_cancelled_part_way_is_finished_intact_by_the_close() {
    // Shutdown cancels the in-flight send after part of it was written; the closing phase
    // must write exactly the rest, then the close frame.
    let mut server = ServerProcess::start("uring", &["--max-message-size", "33554432"]);
    let mut ws = stalled_big_echo(&server);
    server.signal(libc::SIGTERM);
    server.wait_for_log(|l| l.contains("\"event\":\"shutdown\""));
    let echo = ws.read_frame().expect("the echo");
    assert_eq!(echo.payload.len(), BIG);
    assert!(
        echo.payload.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8),
        "echo corrupted"
    );
    let close = ws.read_frame().expect("the close frame");
    assert_eq!(close.close_code(), Some(1001));
    ws.send(&client_frame(0x88, &1001u16.to_be_bytes()));
    let mut rest = Vec::new();
    let _ = ws.stream.read_to_end(&mut rest);
    assert!(server
        .wait_exit(std::time::Duration::from_secs(20))
        .is_some_and(|s| s.success()));
}

#[test]
fn a_stalled_reader_keeps_its_connection_and_memory_bounded() {
    // Not reading a 24 MiB echo is backpressure, not a slow consumer: the connection stays
    // open (the queue holds one message), and it is still served once the client reads.
    let server = ServerProcess::start("uring", &["--max-message-size", "33554432"]);
    let mut ws = stalled_big_echo(&server);
    assert_eq!(server.metric("ringcast_slow_consumers_total"), 0);
    let echo = ws.read_frame().expect("the echo");
    assert_eq!(echo.payload.len(), BIG);
    ws.send(&client_frame(0x81, b"still here"));
    assert_eq!(ws.read_frame().unwrap().payload, b"still here");
}
