//! Publish/subscribe: Redis's PUBLISH, SUBSCRIBE, PSUBSCRIBE and their
//! inverses, across every connection of the server.
//!
//! Owns: the channel and pattern registry, formatting `message` and
//! `pmessage` pushes (RESP2 arrays or RESP3 pushes), a connection's own
//! subscription set ([`Subscriptions`]) and the replies of the
//! subscribe family. Does not own: delivery to sockets (a subscriber is a
//! [`Queue`] its worker drains when woken, as for MONITOR), or which
//! commands a subscribed connection may still run (the RESP session).
//!
//! Why it exists: Redis users rely on pub/sub, and Redis Sentinel finds
//! the other Sentinels watching a primary through the
//! `__sentinel__:hello` channel of every instance it monitors.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use pogocache_protocol::{ArgView, resp};

use crate::monitor::{QUEUE_MAX, Queue};
use crate::{Ctx, Reply};

/// Wakes the worker that owns a connection, so it writes what was queued.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone)]
struct Sub {
    id: u64,
    queue: Queue,
    wake: Wake,
    /// The connection's record: its RESP version decides the message
    /// format at delivery (a HELLO after SUBSCRIBE changes it).
    client: Option<Arc<crate::clients::ClientInfo>>,
}

impl Sub {
    fn resp3(&self) -> bool {
        self.client
            .as_ref()
            .is_some_and(|c| c.resp.load(Ordering::Relaxed) == 3)
    }
}

#[derive(Default)]
struct Registry {
    channels: HashMap<Vec<u8>, Vec<Sub>>,
    patterns: Vec<(Vec<u8>, Sub)>,
}

/// Every subscription of the server.
#[derive(Default)]
pub struct PubSub {
    reg: RwLock<Registry>,
    /// Connections with at least one subscription (so closing a
    /// connection that never subscribed costs no lock).
    subscribers: AtomicUsize,
}

/// One connection's subscriptions and its delivery queue.
#[derive(Debug)]
pub struct Subscriptions {
    pub queue: Queue,
    channels: BTreeSet<Vec<u8>>,
    patterns: BTreeSet<Vec<u8>>,
}

impl Subscriptions {
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }
}

impl PubSub {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.reg.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.reg.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `message` to every subscriber of `channel` and of a pattern
    /// matching it; returns how many received it (PUBLISH's reply). A
    /// subscriber that has fallen [`QUEUE_MAX`] bytes behind misses it.
    pub fn publish(&self, channel: &[u8], message: &[u8]) -> usize {
        if self.subscribers.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let reg = self.read();
        let mut n = 0;
        if let Some(subs) = reg.channels.get(channel) {
            for s in subs {
                n += usize::from(deliver(s, |out| {
                    push_header(out, s.resp3(), 3);
                    resp::bulk(out, b"message");
                    resp::bulk(out, channel);
                    resp::bulk(out, message);
                }));
            }
        }
        for (pat, s) in &reg.patterns {
            if pogocache_store::glob::matches(pat, channel) {
                n += usize::from(deliver(s, |out| {
                    push_header(out, s.resp3(), 4);
                    resp::bulk(out, b"pmessage");
                    resp::bulk(out, pat);
                    resp::bulk(out, channel);
                    resp::bulk(out, message);
                }));
            }
        }
        n
    }

    /// Removes every subscription of connection `id` (it closed).
    pub fn remove(&self, id: u64, subs: &Subscriptions) {
        if subs.count() == 0 {
            return;
        }
        let mut reg = self.write();
        for c in &subs.channels {
            unlink(&mut reg, c, id);
        }
        reg.patterns.retain(|(_, s)| s.id != id);
        self.subscribers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Active channels matching `pattern` (all when `None`), for PUBSUB
    /// CHANNELS.
    fn channels(&self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        let reg = self.read();
        let mut v: Vec<Vec<u8>> = reg
            .channels
            .keys()
            .filter(|c| pattern.is_none_or(|p| pogocache_store::glob::matches(p, c)))
            .cloned()
            .collect();
        v.sort();
        v
    }

    fn numsub(&self, channel: &[u8]) -> usize {
        self.read().channels.get(channel).map_or(0, Vec::len)
    }

    fn numpat(&self) -> usize {
        self.read().patterns.len()
    }
}

fn unlink(reg: &mut Registry, channel: &[u8], id: u64) {
    if let Some(v) = reg.channels.get_mut(channel) {
        v.retain(|s| s.id != id);
        if v.is_empty() {
            reg.channels.remove(channel);
        }
    }
}

/// Appends one message to a subscriber's queue and wakes its worker when
/// the queue was empty. Returns false when the subscriber is too far
/// behind to take more.
fn deliver(s: &Sub, f: impl FnOnce(&mut Vec<u8>)) -> bool {
    let mut q = s.queue.lock().unwrap_or_else(|e| e.into_inner());
    if q.len() > QUEUE_MAX {
        return false;
    }
    let was_empty = q.is_empty();
    f(&mut q);
    drop(q);
    if was_empty {
        (s.wake)();
    }
    true
}

fn push_header(out: &mut Vec<u8>, resp3: bool, n: usize) {
    if resp3 {
        resp::push(out, n)
    } else {
        resp::array(out, n)
    }
}

/// `SUBSCRIBE`, `PSUBSCRIBE`, `UNSUBSCRIBE`, `PUNSUBSCRIBE`: changes this
/// connection's subscriptions and replies with one confirmation per
/// channel, as Redis does. Returns whether the connection now has a
/// delivery queue its worker must drain.
pub fn subscribe<R: Reply>(
    ctx: &mut Ctx<'_>,
    args: ArgView<'_>,
    pattern: bool,
    on: bool,
    out: &mut R,
) -> bool {
    let Some(wake) = ctx.wake.cloned() else {
        out.error(b"ERR pub/sub is only available over RESP");
        return false;
    };
    let id = ctx.session.client.as_ref().map_or(0, |c| c.id);
    let hub = &ctx.shared.pubsub;
    let client = ctx.session.client.clone();
    let subs = ctx.session.pubsub.get_or_insert_with(|| {
        Box::new(Subscriptions {
            queue: Queue::default(),
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
        })
    });
    let before = subs.count();
    let kind: &[u8] = match (pattern, on) {
        (false, true) => b"subscribe",
        (true, true) => b"psubscribe",
        (false, false) => b"unsubscribe",
        (true, false) => b"punsubscribe",
    };
    let mut names: Vec<Vec<u8>> = args.iter().skip(1).map(|a| a.to_vec()).collect();
    if !on && names.is_empty() {
        names = if pattern {
            subs.patterns.iter().cloned().collect()
        } else {
            subs.channels.iter().cloned().collect()
        };
    }
    let confirm = |out: &mut R, name: Option<&[u8]>, count: usize| {
        out.push(3);
        out.bulk(kind);
        match name {
            Some(n) => out.bulk(n),
            None => out.null(),
        }
        out.int(count as i64);
    };
    if names.is_empty() {
        confirm(out, None, subs.count());
    }
    {
        let mut reg = hub.write();
        for name in names {
            let set = if pattern {
                &mut subs.patterns
            } else {
                &mut subs.channels
            };
            if on {
                if set.insert(name.clone()) {
                    let sub = Sub {
                        id,
                        queue: subs.queue.clone(),
                        wake: wake.clone(),
                        client: client.clone(),
                    };
                    if pattern {
                        reg.patterns.push((name.clone(), sub));
                    } else {
                        reg.channels.entry(name.clone()).or_default().push(sub);
                    }
                }
            } else if set.remove(&name) {
                if pattern {
                    reg.patterns.retain(|(p, s)| !(s.id == id && *p == name));
                } else {
                    unlink(&mut reg, &name, id);
                }
            }
            confirm(out, Some(&name), subs.count());
        }
    }
    let after = subs.count();
    if before == 0 && after > 0 {
        hub.subscribers.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = &ctx.session.client {
            c.set_kind(crate::clients::Kind::PubSub);
        }
    } else if before > 0 && after == 0 {
        hub.subscribers.fetch_sub(1, Ordering::Relaxed);
        if let Some(c) = &ctx.session.client {
            c.set_kind(crate::clients::Kind::Normal);
        }
    }
    before == 0 && after > 0
}

/// `PUBLISH channel message`
pub fn publish<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    out.int(ctx.shared.pubsub.publish(args.get(1), args.get(2)) as i64);
}

/// `PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT`
pub fn pubsub<R: Reply>(ctx: &mut Ctx<'_>, args: ArgView<'_>, out: &mut R) {
    let hub = &ctx.shared.pubsub;
    let sub = args.get(1);
    if sub.eq_ignore_ascii_case(b"channels") && args.len() <= 3 {
        let pat = (args.len() == 3).then(|| args.get(2));
        let v = hub.channels(pat);
        out.array(v.len());
        for c in &v {
            out.bulk(c);
        }
    } else if sub.eq_ignore_ascii_case(b"numsub") {
        out.array((args.len() - 2) * 2);
        for c in args.iter().skip(2) {
            out.bulk(c);
            out.int(hub.numsub(c) as i64);
        }
    } else if sub.eq_ignore_ascii_case(b"numpat") && args.len() == 2 {
        out.int(hub.numpat() as i64);
    } else {
        let mut msg = b"ERR unknown subcommand '".to_vec();
        msg.extend_from_slice(&sub[..sub.len().min(128)]);
        msg.extend_from_slice(b"'. Try PUBSUB HELP.");
        out.error(&msg);
    }
}
