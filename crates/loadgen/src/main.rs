//! `loadgen`: a closed-loop load generator for RESP and Memcache servers.
//!
//! Owns: connection management (threads × connections, one mio loop per
//! thread), request encoding for SET/GET in both protocols, reply framing
//! (just enough to count replies), key distributions (uniform, Zipf),
//! latency recording (HdrHistogram per thread, merged), a once-a-second
//! progress line on stderr, and the final human table or JSON on stdout.
//!
//! Each connection keeps exactly `--pipeline` requests in flight: it
//! writes a batch, waits for all replies, records the batch's latency for
//! each request in it, and writes the next batch. Load goes to loopback
//! addresses only and stops by itself after `--duration` or `--requests`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use pogocache_protocol::memcache;
use pogocache_protocol::resp;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Proto {
    Resp,
    Memcache,
}

#[derive(Clone, Debug)]
struct Opts {
    addr: SocketAddr,
    proto: Proto,
    threads: usize,
    conns: usize,
    pipeline: usize,
    sets: u32,
    gets: u32,
    keys: u64,
    zipf: Option<f64>,
    value_min: usize,
    value_max: usize,
    duration: Option<Duration>,
    requests: Option<u64>,
    json: bool,
    quiet: bool,
    prefill: bool,
    /// Expiry given to every SET (PX in RESP, whole seconds in Memcache).
    ttl_ms: Option<u64>,
    /// Stop after the prefill (a bulk load for memory measurements).
    load_only: bool,
    /// Cap on requests per second across all threads (closed loop
    /// otherwise).
    rate: Option<f64>,
}

const USAGE: &str = "Usage: loadgen [options]
  --host H            server host (loopback only)      (default: 127.0.0.1)
  --port P            server port                      (default: 9401)
  --proto resp|memcache                                (default: resp)
  --threads N         client threads                   (default: 1)
  --conns N           connections per thread           (default: 50)
  --pipeline N        requests in flight per connection (default: 1)
  --ratio S:G         set:get mix                      (default: 1:10)
  --keys N            key space size                   (default: 100000)
  --zipf S            Zipf exponent (omit for uniform)
  --value N|MIN-MAX   value size in bytes              (default: 100)
  --duration SECS     run time                         (default: 10)
  --requests N        stop after N requests instead
  --prefill           SET every key once before measuring
  --load-only         prefill and exit (bulk load for memory measurements)
  --rate N            cap total requests per second (default: unlimited)
  --ttl MS            give every SET this expiry (default: none)
  --json              print the result as JSON
  --quiet             no progress line";

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        addr: "127.0.0.1:9401".parse().unwrap(),
        proto: Proto::Resp,
        threads: 1,
        conns: 50,
        pipeline: 1,
        sets: 1,
        gets: 10,
        keys: 100_000,
        zipf: None,
        value_min: 100,
        value_max: 100,
        duration: Some(Duration::from_secs(10)),
        requests: None,
        json: false,
        quiet: false,
        prefill: false,
        load_only: false,
        rate: None,
        ttl_ms: None,
    };
    let (mut host, mut port) = ("127.0.0.1".to_string(), 9401u16);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let num = |v: Option<&String>, name: &str| -> Result<u64, String> {
        v.and_then(|s| s.parse().ok())
            .ok_or(format!("{name} needs a number"))
    };
    while i < args.len() {
        let a = args[i].as_str();
        let v = args.get(i + 1);
        i += 2;
        match a {
            "--host" => host = v.ok_or("--host needs a value")?.clone(),
            "--port" => port = num(v, a)? as u16,
            "--proto" => {
                o.proto = match v.map(|s| s.as_str()) {
                    Some("resp") => Proto::Resp,
                    Some("memcache") => Proto::Memcache,
                    _ => return Err("--proto is resp or memcache".into()),
                }
            }
            "--threads" => o.threads = num(v, a)?.max(1) as usize,
            "--conns" => o.conns = num(v, a)?.max(1) as usize,
            "--pipeline" => o.pipeline = num(v, a)?.max(1) as usize,
            "--keys" => o.keys = num(v, a)?.max(1),
            "--zipf" => {
                o.zipf = Some(
                    v.and_then(|s| s.parse().ok())
                        .ok_or("--zipf needs a number")?,
                )
            }
            "--duration" => {
                o.duration = Some(Duration::from_secs_f64(
                    v.and_then(|s| s.parse().ok())
                        .ok_or("--duration needs seconds")?,
                ));
            }
            "--requests" => {
                o.requests = Some(num(v, a)?);
                o.duration = None;
            }
            "--ratio" => {
                let (s, g) = v.and_then(|s| s.split_once(':')).ok_or("--ratio is S:G")?;
                o.sets = s.parse().map_err(|_| "--ratio is S:G")?;
                o.gets = g.parse().map_err(|_| "--ratio is S:G")?;
                if o.sets + o.gets == 0 {
                    return Err("--ratio needs a non-zero part".into());
                }
            }
            "--value" => {
                let s = v.ok_or("--value needs a size")?;
                let (a, b) = s.split_once('-').unwrap_or((s, s));
                o.value_min = a.parse().map_err(|_| "--value is N or MIN-MAX")?;
                o.value_max = b.parse().map_err(|_| "--value is N or MIN-MAX")?;
                if o.value_min > o.value_max {
                    return Err("--value MIN is above MAX".into());
                }
            }
            "--json" => {
                o.json = true;
                i -= 1;
            }
            "--quiet" => {
                o.quiet = true;
                i -= 1;
            }
            "--prefill" => {
                o.prefill = true;
                i -= 1;
            }
            "--load-only" => {
                o.prefill = true;
                o.load_only = true;
                i -= 1;
            }
            "--ttl" => o.ttl_ms = Some(num(v, a)?.max(1)),
            "--rate" => {
                let r: f64 = v
                    .and_then(|s| s.parse().ok())
                    .filter(|r: &f64| *r > 0.0)
                    .ok_or("--rate needs a positive number")?;
                o.rate = Some(r);
            }
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or("no address")?;
    if !addr.ip().is_loopback() {
        return Err("loadgen only targets loopback addresses".into());
    }
    o.addr = addr;
    Ok(o)
}

/// xorshift64*: small, fast, good enough for key and op choice.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        (((self.next() >> 11) as u128 * n as u128) >> 53) as u64
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Key chooser: uniform, or Zipf by inverse CDF over a precomputed table.
enum Keys {
    Uniform(u64),
    Zipf(Arc<Vec<f64>>),
}

impl Keys {
    fn new(o: &Opts) -> Keys {
        match o.zipf {
            None => Keys::Uniform(o.keys),
            Some(s) => {
                let mut cdf = Vec::with_capacity(o.keys as usize);
                let mut sum = 0.0;
                for k in 1..=o.keys {
                    sum += 1.0 / (k as f64).powf(s);
                    cdf.push(sum);
                }
                cdf.iter_mut().for_each(|c| *c /= sum);
                Keys::Zipf(Arc::new(cdf))
            }
        }
    }
    fn pick(&self, r: &mut Rng) -> u64 {
        match self {
            Keys::Uniform(n) => r.below(*n),
            Keys::Zipf(cdf) => {
                let u = r.unit();
                cdf.partition_point(|&c| c < u) as u64
            }
        }
    }
}

/// One request, written by the protocol crate's request encoders.
fn encode(out: &mut Vec<u8>, proto: Proto, set: bool, key: u64, value: &[u8], ttl_ms: Option<u64>) {
    let key = format!("key:{key:012}");
    let key = key.as_bytes();
    match (proto, set) {
        (Proto::Resp, true) => match ttl_ms {
            Some(ms) => resp::request(out, &[b"SET", key, value, b"PX", ms.to_string().as_bytes()]),
            None => resp::request(out, &[b"SET", key, value]),
        },
        (Proto::Resp, false) => resp::request(out, &[b"GET", key]),
        (Proto::Memcache, true) => {
            let exptime = ttl_ms.map(|ms| ms.div_ceil(1000)).unwrap_or(0);
            memcache::compose::set(out, key, exptime as i64, value)
        }
        (Proto::Memcache, false) => memcache::compose::get(out, &[key], false),
    }
}

fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf[from..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| from + p + 2)
}

/// Length of one complete reply at the front of `buf`, if complete.
fn reply_len(buf: &[u8], proto: Proto) -> Option<usize> {
    match proto {
        Proto::Resp => {
            let first = line_end(buf, 0)?;
            if buf[0] == b'$' {
                let n: i64 = std::str::from_utf8(&buf[1..first - 2]).ok()?.parse().ok()?;
                if n < 0 {
                    return Some(first);
                }
                let total = first + n as usize + 2;
                (buf.len() >= total).then_some(total)
            } else {
                Some(first)
            }
        }
        Proto::Memcache => {
            let mut pos = 0;
            loop {
                let end = line_end(buf, pos)?;
                let line = &buf[pos..end];
                if line.starts_with(b"VALUE ") {
                    let len: usize = std::str::from_utf8(&line[..line.len() - 2])
                        .ok()?
                        .split(' ')
                        .nth(3)?
                        .parse()
                        .ok()?;
                    pos = end + len + 2;
                    if buf.len() < pos {
                        return None;
                    }
                } else {
                    return Some(end);
                }
            }
        }
    }
}

struct Conn {
    sock: TcpStream,
    out: Vec<u8>,
    wpos: usize,
    inbuf: Vec<u8>,
    waiting: usize,
    /// Requests in the batch in flight.
    batch: usize,
    sent_at: Instant,
}

struct Shared {
    done: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
}

fn worker(o: Opts, keys: Arc<Keys>, shared: Arc<Shared>, seed: u64) -> io::Result<Histogram<u64>> {
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds");
    let mut poll = Poll::new()?;
    let mut rng = Rng(seed | 1);
    let value: Vec<u8> = (0..o.value_max).map(|i| b'a' + (i % 26) as u8).collect();
    let mut conns = Vec::with_capacity(o.conns);
    for i in 0..o.conns {
        let std = std::net::TcpStream::connect(o.addr)?;
        std.set_nodelay(true)?;
        std.set_nonblocking(true)?;
        let mut sock = TcpStream::from_std(std);
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE | Interest::WRITABLE)?;
        conns.push(Conn {
            sock,
            out: Vec::new(),
            wpos: 0,
            inbuf: Vec::new(),
            waiting: 0,
            batch: 0,
            sent_at: Instant::now(),
        });
    }
    let limit = o.requests.map(|r| r / o.threads as u64);
    let mut issued = 0u64;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let fill = |c: &mut Conn, rng: &mut Rng, issued: &mut u64| {
        c.out.clear();
        c.wpos = 0;
        let n = match limit {
            Some(l) => (l - (*issued).min(l)).min(o.pipeline as u64) as usize,
            None => o.pipeline,
        };
        for _ in 0..n {
            let set = rng.below((o.sets + o.gets) as u64) < o.sets as u64;
            let len = o.value_min + rng.below((o.value_max - o.value_min + 1) as u64) as usize;
            encode(
                &mut c.out,
                o.proto,
                set,
                keys.pick(rng),
                &value[..len],
                o.ttl_ms,
            );
        }
        *issued += n as u64;
        c.waiting = n;
        c.batch = n;
        c.sent_at = Instant::now();
    };
    for c in conns.iter_mut() {
        fill(c, &mut rng, &mut issued);
    }
    let mut active = conns.iter().filter(|c| c.waiting > 0).count();
    // Per-thread share of `--rate`; connections over the allowance wait
    // in `deferred` (latency is measured from the actual send).
    let rate = o.rate.map(|r| r / o.threads as f64);
    let started = Instant::now();
    let mut deferred = std::collections::VecDeque::new();
    while active > 0 {
        let wait = if deferred.is_empty() { 100 } else { 1 };
        poll.poll(&mut events, Some(Duration::from_millis(wait)))?;
        let stopping = shared.stop.load(Relaxed);
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if c.waiting == 0 {
                continue;
            }
            while c.wpos < c.out.len() {
                match c.sock.write(&c.out[c.wpos..]) {
                    Ok(n) => c.wpos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            loop {
                match c.sock.read(&mut buf) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "server closed the connection",
                        ));
                    }
                    Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            let mut pos = 0;
            while c.waiting > 0 {
                let Some(n) = reply_len(&c.inbuf[pos..], o.proto) else {
                    break;
                };
                let r = &c.inbuf[pos..pos + n];
                if r.starts_with(b"-")
                    || r.starts_with(b"ERROR")
                    || r.starts_with(b"CLIENT_ERROR")
                    || r.starts_with(b"SERVER_ERROR")
                {
                    shared.errors.fetch_add(1, Relaxed);
                }
                pos += n;
                c.waiting -= 1;
            }
            c.inbuf.drain(..pos);
            if c.waiting == 0 {
                let ns = c.sent_at.elapsed().as_nanos() as u64;
                let _ = hist.record_n(ns.max(1), c.batch as u64);
                shared.done.fetch_add(c.batch as u64, Relaxed);
                if stopping || limit.is_some_and(|l| issued >= l) {
                    active -= 1;
                } else if rate.is_some_and(|r| issued as f64 >= r * started.elapsed().as_secs_f64())
                {
                    deferred.push_back(ev.token().0);
                } else {
                    fill(c, &mut rng, &mut issued);
                    send(c)?;
                }
            }
        }
        // Rate limit: release parked connections as the allowance grows.
        while let Some(&i) = deferred.front() {
            let stop = shared.stop.load(Relaxed);
            if !stop && rate.is_some_and(|r| issued as f64 >= r * started.elapsed().as_secs_f64()) {
                break;
            }
            deferred.pop_front();
            let c = &mut conns[i];
            if stop {
                active -= 1;
                continue;
            }
            fill(c, &mut rng, &mut issued);
            send(c)?;
        }
    }
    Ok(hist)
}

/// Writes as much of the connection's pending batch as the socket takes;
/// the rest goes out on the next writable event.
fn send(c: &mut Conn) -> io::Result<()> {
    while c.wpos < c.out.len() {
        match c.sock.write(&c.out[c.wpos..]) {
            Ok(n) => c.wpos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn prefill(o: &Opts) -> io::Result<()> {
    let mut s = std::net::TcpStream::connect(o.addr)?;
    let value: Vec<u8> = vec![b'p'; o.value_max];
    let mut batch = Vec::new();
    let mut reply = vec![0u8; 1 << 16];
    let mut k = 0;
    while k < o.keys {
        batch.clear();
        let n = (o.keys - k).min(1000);
        for i in 0..n {
            encode(&mut batch, o.proto, true, k + i, &value, None);
        }
        s.write_all(&batch)?;
        let want = n as usize * if o.proto == Proto::Resp { 5 } else { 8 };
        let mut got = 0;
        while got < want {
            let r = s.read(&mut reply)?;
            if r == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            got += r;
        }
        k += n;
    }
    Ok(())
}

fn main() {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if o.prefill
        && let Err(e) = prefill(&o)
    {
        eprintln!("prefill failed: {e}");
        std::process::exit(1);
    }
    if o.load_only {
        return;
    }
    let keys = Arc::new(Keys::new(&o));
    let shared = Arc::new(Shared {
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let start = Instant::now();
    let handles: Vec<_> = (0..o.threads)
        .map(|t| {
            let (o, keys, shared) = (o.clone(), keys.clone(), shared.clone());
            std::thread::spawn(move || {
                worker(
                    o,
                    keys,
                    shared,
                    0x9E37_79B9 ^ ((t as u64 + 1) * 0x1000_0001),
                )
            })
        })
        .collect();
    let mut last = 0;
    loop {
        let tick = Instant::now();
        while tick.elapsed() < Duration::from_secs(1) && !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let done = shared.done.load(Relaxed);
        if !o.quiet {
            eprint!(
                "\r{:>6.1}s {:>12} req {:>12.0} req/s   ",
                start.elapsed().as_secs_f64(),
                done,
                (done - last) as f64
            );
        }
        last = done;
        if o.duration.is_some_and(|d| start.elapsed() >= d) {
            shared.stop.store(true, Relaxed);
        }
        if handles.iter().all(|h| h.is_finished()) {
            break;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    if !o.quiet {
        eprintln!();
    }
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds");
    for h in handles {
        match h.join().expect("worker thread") {
            Ok(t) => hist.add(t).expect("same bounds"),
            Err(e) => {
                eprintln!("worker failed: {e}");
                std::process::exit(1);
            }
        }
    }
    let done = shared.done.load(Relaxed);
    let errors = shared.errors.load(Relaxed);
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let ops = done as f64 / elapsed;
    if o.json {
        println!(
            "{{\"proto\":\"{:?}\",\"threads\":{},\"conns\":{},\"pipeline\":{},\"requests\":{done},\"errors\":{errors},\"seconds\":{elapsed:.3},\"ops_per_sec\":{ops:.0},\"p50_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1},\"max_us\":{:.1}}}",
            o.proto,
            o.threads,
            o.conns,
            o.pipeline,
            us(0.5),
            us(0.99),
            us(0.999),
            hist.max() as f64 / 1000.0
        );
    } else {
        println!("requests   {done} in {elapsed:.2}s ({errors} errors)");
        println!("throughput {ops:.0} req/s");
        println!(
            "latency    p50 {:.1}us  p99 {:.1}us  p99.9 {:.1}us  max {:.1}us",
            us(0.5),
            us(0.99),
            us(0.999),
            hist.max() as f64 / 1000.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_framing() {
        assert_eq!(reply_len(b"+OK\r\n$3\r\nabc\r\n", Proto::Resp), Some(5));
        assert_eq!(reply_len(b"$3\r\nabc\r\n", Proto::Resp), Some(9));
        assert_eq!(reply_len(b"$3\r\nab", Proto::Resp), None);
        assert_eq!(reply_len(b"$-1\r\n", Proto::Resp), Some(5));
        assert_eq!(
            reply_len(b"VALUE k 0 3\r\nabc\r\nEND\r\n", Proto::Memcache),
            Some(23)
        );
        assert_eq!(
            reply_len(b"VALUE k 0 3\r\nabc\r\nEN", Proto::Memcache),
            None
        );
        assert_eq!(reply_len(b"STORED\r\n", Proto::Memcache), Some(8));
    }

    #[test]
    fn zipf_prefers_small_keys() {
        let o = Opts {
            keys: 1000,
            zipf: Some(1.0),
            ..parse_defaults()
        };
        let k = Keys::new(&o);
        let mut r = Rng(7);
        let low = (0..10_000).filter(|_| k.pick(&mut r) < 10).count();
        assert!(low > 3000, "{low}");
    }

    fn parse_defaults() -> Opts {
        Opts {
            addr: "127.0.0.1:1".parse().unwrap(),
            proto: Proto::Resp,
            threads: 1,
            conns: 1,
            pipeline: 1,
            sets: 1,
            gets: 1,
            keys: 10,
            zipf: None,
            value_min: 1,
            value_max: 1,
            duration: None,
            requests: None,
            json: false,
            quiet: true,
            prefill: false,
            load_only: false,
            rate: None,
            ttl_ms: None,
        }
    }
}
