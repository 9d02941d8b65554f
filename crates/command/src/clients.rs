//! The client registry: one record per open connection, for `CLIENT
//! LIST/INFO/KILL/SETNAME/...` and the `clients` section of INFO.
//!
//! Owns: the records, their names and library tags, and kill requests.
//! Does not own: the connections themselves (a worker registers each one
//! it accepts, refreshes its activity time once per loop turn, and closes
//! it when `take_kills` says so) or waking workers (the server installs
//! that callback with [`Registry::set_waker`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

/// What CLIENT SETNAME/SETINFO change (rarely written, read by LIST).
#[derive(Default, Debug)]
pub struct Tags {
    pub name: Vec<u8>,
    pub lib_name: Vec<u8>,
    pub lib_ver: Vec<u8>,
}

/// One connection as CLIENT LIST shows it.
#[derive(Debug)]
pub struct ClientInfo {
    pub id: u64,
    /// Peer `ip:port`, or the socket path for Unix sockets.
    pub addr: String,
    /// Local `ip:port` (or socket path).
    pub laddr: String,
    /// The worker thread that owns the connection.
    pub worker: usize,
    /// Monotonic ns at accept.
    pub created: i64,
    /// Monotonic ns of the last loop turn that read from it.
    pub last: AtomicI64,
    /// RESP protocol version in use (2 or 3).
    pub resp: AtomicU8,
    /// Set by CLIENT KILL; the owning worker closes the connection.
    pub kill: AtomicBool,
    pub tags: Mutex<Tags>,
    /// What the connection is for, a [`Kind`] (CLIENT LIST's flags,
    /// CLIENT KILL TYPE).
    kind: AtomicU8,
}

/// What a connection is for, as CLIENT KILL TYPE and CLIENT LIST's flags
/// tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Normal = 0,
    /// Subscribed to a channel or pattern.
    PubSub = 1,
    /// A replica streaming from this server.
    Replica = 2,
}

impl Kind {
    /// The name CLIENT KILL TYPE takes (`slave` is Redis's old alias).
    pub fn parse(name: &[u8]) -> Option<Kind> {
        let n = name.to_ascii_lowercase();
        Some(match &n[..] {
            b"normal" => Kind::Normal,
            b"pubsub" => Kind::PubSub,
            b"replica" | b"slave" => Kind::Replica,
            _ => return None,
        })
    }
}

impl ClientInfo {
    pub fn new(id: u64, addr: String, laddr: String, worker: usize, now: i64) -> ClientInfo {
        ClientInfo {
            id,
            addr,
            laddr,
            worker,
            created: now,
            last: AtomicI64::new(now),
            resp: AtomicU8::new(2),
            kill: AtomicBool::new(false),
            tags: Mutex::default(),
            kind: AtomicU8::new(Kind::Normal as u8),
        }
    }

    pub fn kind(&self) -> Kind {
        match self.kind.load(Relaxed) {
            1 => Kind::PubSub,
            2 => Kind::Replica,
            _ => Kind::Normal,
        }
    }

    pub fn set_kind(&self, k: Kind) {
        self.kind.store(k as u8, Relaxed);
    }

    /// The CLIENT LIST / CLIENT INFO line (Redis's field names; fields we
    /// do not track are left out rather than invented).
    pub fn line(&self, now: i64, out: &mut Vec<u8>) {
        let tags = self.tags.lock().unwrap_or_else(|e| e.into_inner());
        let secs = |ns: i64| (ns.max(0) / 1_000_000_000).to_string();
        out.extend_from_slice(
            format!(
                "id={} addr={} laddr={} name=",
                self.id, self.addr, self.laddr
            )
            .as_bytes(),
        );
        out.extend_from_slice(&tags.name);
        out.extend_from_slice(
            format!(
                " age={} idle={} flags={} db=0 sub=0 psub=0 ssub=0 multi=-1 user=default resp={} lib-name=",
                secs(now - self.created),
                secs(now - self.last.load(Relaxed)),
                match self.kind() {
                    Kind::Normal => "N",
                    Kind::PubSub => "P",
                    Kind::Replica => "S",
                },
                self.resp.load(Relaxed)
            )
            .as_bytes(),
        );
        out.extend_from_slice(&tags.lib_name);
        out.extend_from_slice(b" lib-ver=");
        out.extend_from_slice(&tags.lib_ver);
        out.push(b'\n');
    }
}

/// Every open connection, plus per-worker "someone was killed" flags so a
/// worker scans its connections only when there is something to find.
pub struct Registry {
    map: Mutex<HashMap<u64, Arc<ClientInfo>>>,
    /// Last connection id handed out (ids start at 1, as in Redis).
    ids: AtomicU64,
    pending: Box<[AtomicBool]>,
    waker: OnceLock<Box<dyn Fn(usize) + Send + Sync>>,
}

impl Registry {
    pub fn new(workers: usize) -> Registry {
        Registry {
            map: Mutex::default(),
            ids: AtomicU64::new(0),
            pending: (0..workers.max(1))
                .map(|_| AtomicBool::new(false))
                .collect(),
            waker: OnceLock::new(),
        }
    }

    /// Installs the callback that wakes worker `i` (once, at start).
    pub fn set_waker(&self, f: Box<dyn Fn(usize) + Send + Sync>) {
        let _ = self.waker.set(f);
    }

    /// A new connection id.
    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Relaxed) + 1
    }

    pub fn register(&self, c: Arc<ClientInfo>) {
        self.lock().insert(c.id, c);
    }

    pub fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Snapshot of all records, by id.
    pub fn list(&self) -> Vec<Arc<ClientInfo>> {
        let mut v: Vec<_> = self.lock().values().cloned().collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// Marks the matching connections for closing and wakes their
    /// workers. Returns how many matched.
    pub fn kill(&self, mut matches: impl FnMut(&ClientInfo) -> bool) -> usize {
        let mut n = 0;
        let mut wake = vec![false; self.pending.len()];
        for c in self.lock().values() {
            if matches(c) && !c.kill.swap(true, Relaxed) {
                n += 1;
                if let Some(p) = self.pending.get(c.worker) {
                    p.store(true, Relaxed);
                    wake[c.worker] = true;
                }
            }
        }
        if let Some(f) = self.waker.get() {
            for (i, _) in wake.iter().enumerate().filter(|(_, w)| **w) {
                f(i);
            }
        }
        n
    }

    /// Whether worker `i` has killed connections to close (clears it).
    pub fn take_kills(&self, worker: usize) -> bool {
        self.pending
            .get(worker)
            .is_some_and(|p| p.swap(false, Relaxed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ClientInfo>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_line_fields() {
        let c = ClientInfo::new(7, "127.0.0.1:5".into(), "127.0.0.1:9401".into(), 0, 0);
        c.last.store(4_000_000_000, Relaxed);
        c.tags.lock().unwrap().name = b"app".to_vec();
        c.resp.store(3, Relaxed);
        let mut line = Vec::new();
        c.line(10_500_000_000, &mut line);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "id=7 addr=127.0.0.1:5 laddr=127.0.0.1:9401 name=app age=10 idle=6 flags=N db=0 \
             sub=0 psub=0 ssub=0 multi=-1 user=default resp=3 lib-name= lib-ver=\n"
        );
    }

    #[test]
    fn kill_marks_and_reports_pending_workers() {
        let r = Registry::new(2);
        for (id, w) in [(1, 0), (2, 1), (3, 1)] {
            r.register(Arc::new(ClientInfo::new(
                id,
                format!("a{id}"),
                String::new(),
                w,
                0,
            )));
        }
        assert_eq!(r.kill(|c| c.id >= 2), 2);
        assert_eq!(r.kill(|c| c.id >= 2), 0, "already killed");
        assert!(!r.take_kills(0));
        assert!(r.take_kills(1));
        assert!(!r.take_kills(1));
        r.remove(2);
        assert_eq!(
            r.list().iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(r.next_id(), 1);
    }
}
