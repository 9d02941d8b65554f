//! TLS with rustls (ring provider, no OpenSSL, so the binary stays
//! static), driven sans-IO from the mio workers.
//!
//! Owns: loading and checking the certificate, key and client CA at
//! startup (one clear line on any problem), the server configuration, and
//! the per-connection transport: ciphertext in → plaintext into the
//! connection's input buffer, plaintext out → ciphertext to the socket.
//! Does not own: what runs over it (the same sniffing and protocols as a
//! plain connection).

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// Plaintext a connection may queue inside rustls before `write` pushes
/// back (the same bound as the plain output high-water mark).
const BUFFER_LIMIT: usize = 1 << 20;

/// Builds the server configuration. With `cacert`, client certificates
/// are verified when presented (Pogocache's "verify if presented"); a
/// client without one is still accepted.
pub fn server_config(
    cert: &Path,
    key: &Path,
    cacert: Option<&Path>,
) -> Result<Arc<ServerConfig>, String> {
    let read_err = |what: &str, p: &Path, e: &dyn std::fmt::Display| {
        format!("# tls: cannot read {what} {}: {e}", p.display())
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| read_err("certificate", cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read_err("certificate", cert, &e))?;
    if certs.is_empty() {
        return Err(format!("# tls: no certificate found in {}", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| read_err("private key", key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("# tls: {e}"))?;
    let builder = match cacert {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in
                CertificateDer::pem_file_iter(ca).map_err(|e| read_err("CA certificate", ca, &e))?
            {
                let c = c.map_err(|e| read_err("CA certificate", ca, &e))?;
                roots
                    .add(c)
                    .map_err(|e| format!("# tls: bad CA certificate in {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("# tls: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("# tls: private key does not match the certificate: {e}"))?;
    Ok(Arc::new(config))
}

/// A connection's TLS state.
pub enum Tls {
    /// Plain text.
    Off,
    /// On the TLS port, before the first byte: a ClientHello (0x16)
    /// starts TLS; a Postgres SSLRequest gets `S` and then TLS.
    Sniff,
    On(Box<rustls::ServerConnection>),
}

/// What a connection's first bytes on the TLS port mean.
pub enum SniffResult {
    NeedMore,
    /// Start TLS; the buffered bytes are the beginning of the handshake.
    Handshake,
    /// A Postgres SSLRequest (8 bytes): answer `S`, then start TLS.
    PgSslRequest,
    Reject,
}

const SSL_REQUEST: &[u8] = b"\x00\x00\x00\x08\x04\xd2\x16\x2f";

pub fn sniff(b: &[u8]) -> SniffResult {
    match b.first() {
        None => SniffResult::NeedMore,
        Some(0x16) => SniffResult::Handshake,
        Some(0) if b.len() < 8 => SniffResult::NeedMore,
        Some(0) if &b[..8] == SSL_REQUEST => SniffResult::PgSslRequest,
        _ => SniffResult::Reject,
    }
}

pub fn start(config: &Arc<ServerConfig>) -> io::Result<Box<rustls::ServerConnection>> {
    let mut c = rustls::ServerConnection::new(config.clone()).map_err(io::Error::other)?;
    c.set_buffer_limit(Some(BUFFER_LIMIT));
    Ok(Box::new(c))
}

/// Outcome of pulling bytes through TLS.
pub enum Pulled {
    /// Keep going (possibly more later).
    Ok,
    /// The peer closed (close_notify or EOF).
    Eof,
}

/// Reads ciphertext from `sock` and appends plaintext to `buf[*end..]`,
/// growing `buf` through `grow` when full, until the socket would block
/// or `cap` plaintext bytes are buffered. Errors mean: close.
pub fn pull(
    tls: &mut rustls::ServerConnection,
    sock: &mut (impl Read + Write),
    buf: &mut Vec<u8>,
    start: usize,
    end: &mut usize,
    cap: usize,
) -> io::Result<Pulled> {
    loop {
        // Drain decrypted plaintext first.
        loop {
            if *end == buf.len() {
                let want = (buf.len() * 2).max(16 * 1024);
                buf.resize(want, 0);
            }
            match tls.reader().read(&mut buf[*end..]) {
                Ok(0) => return Ok(Pulled::Eof),
                Ok(n) => *end += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if *end - start >= cap {
            return Ok(Pulled::Ok);
        }
        match tls.read_tls(sock) {
            Ok(0) => return Ok(Pulled::Eof),
            Ok(_) => {
                if let Err(e) = tls.process_new_packets() {
                    // Send the alert before closing.
                    let _ = tls.write_tls(sock);
                    return Err(io::Error::other(e));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Pulled::Ok),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Encrypts as much of `out[*wpos..]` as rustls accepts and writes
/// ciphertext until the socket would block. Returns true when everything
/// (plaintext and ciphertext) has been written.
pub fn push(
    tls: &mut rustls::ServerConnection,
    sock: &mut impl Write,
    out: &[u8],
    wpos: &mut usize,
) -> io::Result<bool> {
    loop {
        while *wpos < out.len() {
            let n = tls.writer().write(&out[*wpos..])?;
            if n == 0 {
                break;
            }
            *wpos += n;
        }
        if !tls.wants_write() {
            return Ok(*wpos == out.len());
        }
        match tls.write_tls(sock) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
