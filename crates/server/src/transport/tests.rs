//! The transport over a real Unix socket pair: buffer allocation and
//! growth, end of stream, backpressure, and the TLS port's sniff and
//! upgrade driven to a real rustls handshake.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream as StdUnix;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use super::*;

/// A transport on one end of a socket pair; the other end is the test's
/// client, non-blocking so a test never waits on it.
fn pair(tls_port: bool) -> (Transport, StdUnix) {
    let (ours, peer) = StdUnix::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    peer.set_nonblocking(true).unwrap();
    let stream = Stream::Unix(mio::net::UnixStream::from_std(ours));
    (Transport::new(stream, tls_port), peer)
}

/// Everything the peer can read now.
fn drain(peer: &mut StdUnix) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match peer.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return got,
            Err(e) => panic!("peer read: {e}"),
        }
    }
}

#[test]
fn an_idle_connection_owns_no_buffer_until_bytes_arrive() {
    let (mut t, mut peer) = pair(false);
    let mut p = Buffers::default();
    assert_eq!(t.fill(&mut p, None), Ok(false));
    assert!(t.input().is_empty());
    assert_eq!(t.inbuf.capacity(), 0);
    assert!(!t.runnable());

    peer.write_all(b"PING\r\n").unwrap();
    assert_eq!(t.fill(&mut p, None), Ok(false));
    assert_eq!(t.input(), b"PING\r\n");
    // Just what came: a fresh buffer is not zeroed ahead of use.
    assert_eq!(t.inbuf.len(), 6);
    assert!(t.runnable());

    t.consume(6);
    t.settle_input(&mut p);
    assert!(t.input().is_empty());
    assert_eq!((t.start, t.end), (0, 0));
}

#[test]
fn a_connection_with_nothing_buffered_holds_no_buffers() {
    let (mut t, mut peer) = pair(false);
    let mut p = Buffers::default();
    peer.write_all(b"PING\r\n").unwrap();
    t.fill(&mut p, None).unwrap();
    t.consume(6);
    t.settle_input(&mut p);
    // Ran: the input buffer is a spare now, a full initialised chunk.
    assert_eq!(t.inbuf.capacity(), 0);
    assert_eq!(p.ins.len(), 1);
    assert_eq!(p.ins[0].len(), READ_CHUNK);

    // A reply large enough to be worth keeping goes back once written.
    t.ready_output(&mut p);
    t.out().extend_from_slice(&[b'x'; 2000]);
    assert_eq!(t.flush(&mut p, None, false), Ok(Flushed::Idle));
    assert_eq!(drain(&mut peer).len(), 2000);
    assert_eq!(t.out.capacity(), 0);
    assert_eq!(p.outs.len(), 1);

    // The next request reads straight into the spare, and its reply
    // reuses the spare output buffer.
    peer.write_all(b"GET k\r\n").unwrap();
    t.fill(&mut p, None).unwrap();
    assert_eq!(t.input(), b"GET k\r\n");
    assert_eq!((t.inbuf.len(), p.ins.len()), (READ_CHUNK, 0));
    t.ready_output(&mut p);
    assert!(t.out.capacity() >= 2000);
    assert!(p.outs.is_empty());

    // A partial request keeps its buffer: the rest is still to come.
    t.consume(4);
    t.settle_input(&mut p);
    assert_eq!(t.input(), b"k\r\n");
    assert_eq!((t.inbuf.len(), p.ins.len()), (READ_CHUNK, 0));

    // Spares are bounded: buffers beyond SPARES are freed.
    let mut many = Buffers::default();
    for _ in 0..SPARES + 10 {
        let (mut t, mut peer) = pair(false);
        peer.write_all(b"PING\r\n").unwrap();
        t.fill(&mut Buffers::default(), None).unwrap();
        t.consume(6);
        t.settle_input(&mut many);
    }
    assert_eq!(many.ins.len(), SPARES);
}

#[test]
fn growth_follows_received_bytes_not_declared_lengths() {
    let (mut t, mut peer) = pair(false);
    let mut p = Buffers::default();
    // A client declares a 512 MiB value and sends 16 bytes of it.
    peer.write_all(b"*2\r\n$3\r\nGET\r\n$536").unwrap();
    t.fill(&mut p, None).unwrap();
    t.need(536_870_000);
    assert!(!t.runnable());
    peer.write_all(b"870000\r\nabcdefgh").unwrap();
    t.fill(&mut p, None).unwrap();
    assert_eq!(t.input().len(), 33);
    assert_eq!(t.inbuf.len(), READ_CHUNK);

    // 40,000 bytes that do arrive grow the buffer by doubling, to fit.
    let (mut t, mut peer) = pair(false);
    let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    peer.write_all(&data).unwrap();
    t.fill(&mut p, None).unwrap();
    assert_eq!(t.input(), &data[..]);
    assert_eq!(t.inbuf.len(), 4 * READ_CHUNK);

    // Consumed bytes are compacted away (once the end of the buffer is
    // reached) before it grows again.
    t.consume(39_000);
    let more = vec![7u8; 30_000];
    peer.write_all(&more).unwrap();
    t.fill(&mut p, None).unwrap();
    assert_eq!(t.input().len(), 31_000);
    assert_eq!(&t.input()[..1000], &data[39_000..]);
    assert_eq!(&t.input()[1000..], &more[..]);
    assert_eq!(t.inbuf.len(), 4 * READ_CHUNK);
    assert_eq!(t.start, 0);
}

#[test]
fn end_of_stream_closes_once_the_reply_is_written() {
    let (mut t, mut peer) = pair(false);
    let mut p = Buffers::default();
    peer.write_all(b"GET k").unwrap();
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    t.fill(&mut p, None).unwrap();
    t.fill(&mut p, None).unwrap();
    assert_eq!(t.input(), b"GET k");
    // The rest of the request can never come.
    t.need(7);
    t.out().extend_from_slice(b"bye");
    assert_eq!(t.flush(&mut p, None, false), Ok(Flushed::Done));
    assert_eq!(drain(&mut peer), b"bye");
}

#[test]
fn close_after_flush_stops_reading_and_running() {
    let (mut t, mut peer) = pair(false);
    let mut p = Buffers::default();
    peer.write_all(b"QUIT\r\n").unwrap();
    t.fill(&mut p, None).unwrap();
    t.out().extend_from_slice(b"+OK\r\n");
    t.close_after_flush();
    assert!(!t.runnable());
    peer.write_all(b"PING\r\n").unwrap();
    t.fill(&mut p, None).unwrap();
    assert_eq!(t.input(), b"QUIT\r\n");
    assert_eq!(t.flush(&mut p, None, false), Ok(Flushed::Done));
    assert_eq!(drain(&mut peer), b"+OK\r\n");
}

#[test]
fn output_backpressure_holds_requests_until_the_client_reads() {
    let (mut t, mut peer) = pair(false);
    let mut p = Buffers::default();
    let reply: Vec<u8> = (0..4 * OUT_HIGH as u32).map(|i| (i % 253) as u8).collect();
    t.out().extend_from_slice(&reply);
    peer.write_all(b"PING\r\n").unwrap();
    t.fill(&mut p, None).unwrap();
    // With over OUT_HIGH pending the request is not even read; the socket
    // takes only part of 4 MiB and the rest waits.
    assert!(t.input().is_empty());
    assert_eq!(t.flush(&mut p, None, false), Ok(Flushed::Idle));
    assert!(t.pending_out() > OUT_HIGH);
    assert!(!t.runnable());
    let mut got = Vec::new();
    while t.pending_out() > 0 {
        got.extend_from_slice(&drain(&mut peer));
        t.flush(&mut p, None, false).unwrap();
    }
    got.extend_from_slice(&drain(&mut peer));
    assert_eq!(got.len(), reply.len());
    assert!(got == reply);
    t.fill(&mut p, None).unwrap();
    assert_eq!(t.input(), b"PING\r\n");
    assert!(t.runnable());
    assert_eq!(
        t.out.capacity(),
        0,
        "a drained large output buffer is released"
    );
}

/// A server configuration with a fresh self-signed certificate, and a
/// client configuration that trusts it.
fn tls_configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der: CertificateDer<'static> = cert.der().clone();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// Runs the handshake between a rustls client on `peer` and the
/// transport, then sends `msg` through it; returns what the transport's
/// input holds afterwards.
fn handshake_and_send(
    t: &mut Transport,
    peer: &mut StdUnix,
    server: &Arc<rustls::ServerConfig>,
    client: &mut rustls::ClientConnection,
    msg: &[u8],
) -> Vec<u8> {
    let mut p = Buffers::default();
    client.writer().write_all(msg).unwrap();
    // Each round moves every pending flight one way and back; a TLS 1.3
    // handshake needs two.
    for _ in 0..8 {
        while client.wants_write() {
            client.write_tls(peer).unwrap();
        }
        t.fill(&mut p, Some(server)).unwrap();
        t.flush(&mut p, Some(server), false).unwrap();
        let flight = drain(peer);
        if !flight.is_empty() {
            client.read_tls(&mut &flight[..]).unwrap();
            client.process_new_packets().unwrap();
        }
        if !client.is_handshaking() && t.input() == msg {
            break;
        }
    }
    assert!(!client.is_handshaking());
    t.input().to_vec()
}

#[test]
fn a_tls_client_that_always_leaves_a_partial_request_keeps_a_small_buffer() {
    let (server, client_config) = tls_configs();
    let (mut t, mut peer) = pair(true);
    let mut client =
        rustls::ClientConnection::new(client_config, ServerName::try_from("localhost").unwrap())
            .unwrap();
    handshake_and_send(&mut t, &mut peer, &server, &mut client, b"PI");
    let mut p = Buffers::default();
    // 2 MiB streamed in 1,000-byte writes, each ending mid-request: the
    // input never drains, so only compaction keeps the buffer small.
    let chunk: Vec<u8> = b"NG\r\nPI".iter().copied().cycle().take(1000).collect();
    for _ in 0..2000 {
        client.writer().write_all(&chunk).unwrap();
        while client.wants_write() {
            client.write_tls(&mut peer).unwrap();
        }
        t.fill(&mut p, Some(&server)).unwrap();
        // Run whole requests, but always leave something behind.
        let len = t.input().len();
        let keep = match len % 6 {
            0 => 6,
            r => r,
        };
        t.consume(len - keep);
        t.settle_input(&mut p);
        assert!(!t.input().is_empty());
    }
    assert!(t.inbuf.len() <= 4 * READ_CHUNK, "grew to {}", t.inbuf.len());
}

#[test]
fn the_tls_port_starts_tls_on_a_client_hello() {
    let (server, client_config) = tls_configs();
    let (mut t, mut peer) = pair(true);
    let mut client =
        rustls::ClientConnection::new(client_config, ServerName::try_from("localhost").unwrap())
            .unwrap();
    let got = handshake_and_send(&mut t, &mut peer, &server, &mut client, b"PING\r\n");
    assert_eq!(got, b"PING\r\n");
    assert!(t.runnable());

    // Replies are encrypted on the way out.
    t.consume(6);
    t.out().extend_from_slice(b"+PONG\r\n");
    assert_eq!(
        t.flush(&mut Buffers::default(), Some(&server), false),
        Ok(Flushed::Idle)
    );
    let wire = drain(&mut peer);
    assert!(!wire.windows(4).any(|w| w == b"PONG"));
    client.read_tls(&mut &wire[..]).unwrap();
    client.process_new_packets().unwrap();
    let mut plain = [0u8; 7];
    client.reader().read_exact(&mut plain).unwrap();
    assert_eq!(&plain, b"+PONG\r\n");
}

#[test]
fn a_postgres_ssl_request_gets_s_then_tls() {
    let (server, client_config) = tls_configs();
    let (mut t, mut peer) = pair(true);
    let mut p = Buffers::default();
    peer.write_all(b"\x00\x00\x00\x08\x04\xd2\x16\x2f").unwrap();
    t.fill(&mut p, Some(&server)).unwrap();
    // Nothing runs until the `S` is out and TLS is on.
    assert!(!t.runnable());
    assert_eq!(t.flush(&mut p, Some(&server), false), Ok(Flushed::Again));
    assert_eq!(drain(&mut peer), b"S");
    let mut client =
        rustls::ClientConnection::new(client_config, ServerName::try_from("localhost").unwrap())
            .unwrap();
    let startup = b"\x00\x00\x00\x08\x00\x03\x00\x00";
    let got = handshake_and_send(&mut t, &mut peer, &server, &mut client, startup);
    assert_eq!(got, startup);
}

#[test]
fn the_tls_port_refuses_plain_text_and_a_missing_configuration() {
    let (server, _) = tls_configs();
    let mut p = Buffers::default();
    let (mut t, mut peer) = pair(true);
    peer.write_all(b"PING\r\n").unwrap();
    assert_eq!(t.fill(&mut p, Some(&server)), Err(Broken));

    let (mut t, mut peer) = pair(true);
    peer.write_all(b"\x16\x03\x01").unwrap();
    assert_eq!(t.fill(&mut p, None), Err(Broken));

    // A truncated SSLRequest followed by end of stream.
    let (mut t, mut peer) = pair(true);
    peer.write_all(b"\x00\x00\x00").unwrap();
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    t.fill(&mut p, Some(&server)).unwrap_or(false);
    assert_eq!(t.fill(&mut p, Some(&server)), Err(Broken));
}

#[test]
fn buffers_grown_for_large_values_stay_until_released() {
    let (mut t, mut peer) = pair(false);
    let mut p = Buffers::default();
    // A 256 KiB request and reply: both buffers grow past the spare sizes.
    let big = vec![b'v'; 256 * 1024];
    let mut sent = 0;
    while t.input().len() < big.len() {
        match peer.write(&big[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("peer write: {e}"),
        }
        t.fill(&mut p, None).unwrap();
    }
    t.consume(big.len());
    t.settle_input(&mut p);
    t.out().extend_from_slice(&big);
    while t.pending_out() > 0 {
        t.flush(&mut p, None, false).unwrap();
        drain(&mut peer);
    }
    // Kept while the connection is busy: the next large value reuses them.
    assert!(t.inbuf.len() >= big.len());
    assert!(t.out.capacity() >= big.len());
    assert!(p.ins.is_empty() && p.outs.is_empty());

    // Released once the worker finds the connection idle.
    t.release_grown();
    assert_eq!((t.inbuf.capacity(), t.out.capacity()), (0, 0));

    // Nothing is released while input is pending.
    peer.write_all(&big[..40_000]).unwrap();
    t.fill(&mut p, None).unwrap();
    assert!(t.inbuf.len() > READ_CHUNK);
    let pending = t.input().len();
    assert!(pending > 0);
    t.release_grown();
    assert_eq!(t.input().len(), pending);
}
