//! Micro-benchmarks for the sans-io core: unmasking, header decoding, session decoding of
//! small client frames, server frame encoding, and the opening handshake.
//!
//! Run: `cargo bench --bench codec -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use ringcast::proto::frame::{decode_header, encode_frame, server_frame};
use ringcast::proto::handshake::{accept_key, parse_request, upgrade_response, validate_upgrade};
use ringcast::proto::mask::{apply_mask, apply_mask_bytewise};
use ringcast::proto::{Event, OpCode, Role, Session};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Word-at-a-time unmasking against the byte-at-a-time reference, in bytes per second.
fn unmask(c: &mut Criterion) {
    let mut group = c.benchmark_group("unmask");
    for size in [16usize, 1024, 64 * 1024] {
        let mut buf = vec![0x5au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("apply_mask", size), |b| {
            b.iter(|| apply_mask(black_box(buf.as_mut_slice()), black_box(KEY), black_box(1)))
        });
        group.bench_function(BenchmarkId::new("apply_mask_bytewise", size), |b| {
            b.iter(|| apply_mask_bytewise(black_box(buf.as_mut_slice()), black_box(KEY), black_box(1)))
        });
    }
    group.finish();
}

/// A masked client frame with a `len`-byte ASCII payload.
fn client_frame(opcode: OpCode, len: usize) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, true, opcode, &vec![b'x'; len], Some(KEY));
    buf.to_vec()
}

/// Header decoding for each length encoding (7-bit, 16-bit, 64-bit), in headers per second.
fn header_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_header");
    group.throughput(Throughput::Elements(1));
    for (name, len) in [("len7", 32usize), ("len16", 1024), ("len64", 70_000)] {
        let frame = client_frame(OpCode::Binary, len);
        let head = &frame[..14.min(frame.len())];
        group.bench_function(name, |b| b.iter(|| decode_header(black_box(head))));
    }
    group.finish();
}

/// A server session decoding one read that holds a batch of small masked text frames,
/// in messages per second (includes unmasking and UTF-8 validation).
fn session_feed(c: &mut Criterion) {
    const BATCH: usize = 100;
    let mut group = c.benchmark_group("session_feed");
    group.throughput(Throughput::Elements(BATCH as u64));
    for len in [16usize, 128] {
        let input: Vec<u8> = (0..BATCH).flat_map(|_| client_frame(OpCode::Text, len)).collect();
        let mut session = Session::new(Role::Server, 1 << 20);
        group.bench_function(BenchmarkId::new("text_frames", len), |b| {
            b.iter_batched_ref(
                || input.clone(),
                |read| {
                    let mut bytes = 0;
                    session
                        .feed(read, &mut |e| {
                            if let Event::Message { payload, .. } = e {
                                bytes += payload.len();
                            }
                        })
                        .expect("valid frames");
                    bytes
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// Encoding one unmasked server frame into shareable bytes, in frames per second.
fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("server_frame");
    group.throughput(Throughput::Elements(1));
    for len in [32usize, 1024, 64 * 1024] {
        let payload = vec![b'x'; len];
        group.bench_function(BenchmarkId::new("text", len), |b| {
            b.iter(|| server_frame(OpCode::Text, black_box(&payload)))
        });
    }
    group.finish();
}

const REQUEST: &[u8] = b"GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUser-Agent: bench/1.0\r\n\
Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// The opening handshake, in handshakes per second. `validate_upgrade` computes the accept
/// key, so the full path is parse, validate (SHA-1 + base64), and render the 101 response.
fn handshake(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Elements(1));
    let supported = vec!["chat".to_owned()];
    group.bench_function("parse_validate_respond", |b| {
        b.iter(|| {
            let req = parse_request(black_box(REQUEST), 8192)
                .expect("well-formed")
                .expect("complete");
            let upgrade = validate_upgrade(&req, &supported).expect("valid upgrade");
            upgrade_response(&upgrade)
        })
    });
    group.bench_function("accept_key", |b| {
        b.iter(|| accept_key(black_box(b"dGhlIHNhbXBsZSBub25jZQ==")))
    });
    group.finish();
}

criterion_group!(benches, unmask, header_decode, session_feed, encode, handshake);
criterion_main!(benches);
