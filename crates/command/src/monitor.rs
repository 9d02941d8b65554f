//! MONITOR fan-out.
//!
//! Owns: formatting a command as a MONITOR line and handing it to every
//! subscribed connection. Does not own: delivery to sockets (each
//! subscriber is a closure supplied by the runtime, which queues the bytes
//! and wakes the subscriber's worker).
//!
//! Costs one relaxed atomic load per command while nobody monitors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pogocache_protocol::ArgView;

/// Receives formatted lines; returns false to unsubscribe (the monitoring
/// client went away or fell too far behind).
pub type Subscriber = Box<dyn FnMut(&[u8]) -> bool + Send>;

/// MONITOR output a slow monitoring client may fall behind by before it
/// is disconnected.
pub const QUEUE_MAX: usize = 64 << 20;

/// Where a monitoring connection's feed waits for its worker to write it.
pub type Queue = Arc<Mutex<Vec<u8>>>;

/// The set of MONITOR subscribers.
#[derive(Default)]
pub struct MonitorHub {
    active: AtomicUsize,
    subs: Mutex<Vec<(u64, Subscriber)>>,
}

impl MonitorHub {
    /// True when at least one client is monitoring.
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    /// Adds a subscriber under an id chosen by the caller (used to remove
    /// it when its connection closes).
    pub fn subscribe(&self, id: u64, sub: Subscriber) {
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        subs.push((id, sub));
        self.active.store(subs.len(), Ordering::Relaxed);
    }

    /// Subscribes a connection through a [`Queue`]: lines are appended
    /// to it (until [`QUEUE_MAX`] bytes wait unwritten, when the
    /// subscription ends), and `wake` is called when it goes from empty
    /// to non-empty, so the connection's worker comes to write it.
    pub fn subscribe_queue(&self, id: u64, wake: impl Fn() + Send + 'static) -> Queue {
        let queue = Queue::default();
        let q = queue.clone();
        self.subscribe(
            id,
            Box::new(move |line| {
                let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
                if q.len() > QUEUE_MAX {
                    return false;
                }
                let was_empty = q.is_empty();
                q.extend_from_slice(line);
                if was_empty {
                    wake();
                }
                true
            }),
        );
        queue
    }

    /// Removes the subscriber with this id, if present.
    pub fn unsubscribe(&self, id: u64) {
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|(i, _)| *i != id);
        self.active.store(subs.len(), Ordering::Relaxed);
    }

    /// Formats `args` as a MONITOR line and delivers it.
    pub fn feed(&self, wall_ns: i64, addr: &str, args: ArgView<'_>) {
        let line = format_line(wall_ns, addr, args);
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain_mut(|(_, s)| s(&line));
        self.active.store(subs.len(), Ordering::Relaxed);
    }
}

/// `+<unix secs>.<6 digits> [0 <addr>] "<arg>" ...\r\n`, with arguments
/// escaped as Redis does. Pogocache appends four junk bytes after each
/// `\xHH` escape (gap I1); we emit the escape alone.
pub fn format_line(wall_ns: i64, addr: &str, args: ArgView<'_>) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(64);
    let us = wall_ns / 1000;
    let _ = write!(
        out,
        "+{}.{:06} [0 {}]",
        us / 1_000_000,
        us % 1_000_000,
        addr
    );
    for a in args.iter() {
        out.extend_from_slice(b" \"");
        for &c in a {
            match c {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                c if !(0x20..0x7f).contains(&c) => {
                    let _ = write!(out, "\\x{c:02X}");
                }
                c => out.push(c),
            }
        }
        out.push(b'"');
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format_and_escapes() {
        let base = b"getmon\x01\"\\\n\xff";
        let ranges = [(0u32, 3u32), (3, 11)];
        let args = ArgView::from_parts(base, &ranges);
        let line = format_line(1_795_550_383_661_177_123, "127.0.0.1:36866", args);
        assert_eq!(
            line,
            b"+1795550383.661177 [0 127.0.0.1:36866] \"get\" \"mon\\x01\\\"\\\\\\n\\xFF\"\r\n"
                .to_vec()
        );
    }

    #[test]
    fn subscribers_can_leave() {
        let hub = MonitorHub::default();
        assert!(!hub.active());
        let got = std::sync::Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        hub.subscribe(
            1,
            Box::new(move |l| {
                g.lock().unwrap().push(l.to_vec());
                true
            }),
        );
        hub.subscribe(2, Box::new(|_| false));
        assert!(hub.active());
        let ranges = [(0u32, 4u32)];
        hub.feed(0, "unixsocket", ArgView::from_parts(b"ping", &ranges));
        assert_eq!(got.lock().unwrap().len(), 1);
        assert!(hub.active(), "subscriber 2 left, 1 remains");
        hub.unsubscribe(1);
        assert!(!hub.active());
    }
}
