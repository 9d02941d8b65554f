//! Clocks used by the store and the server.
//!
//! Owns: reading the monotonic (boot) clock that every expiry is stored on,
//! and the wall clock used to convert Unix timestamps. Does not own: any
//! caching of the time (the server reads the clock once per event-loop
//! turn and passes `now` down, which is also how tests inject time).

/// Nanoseconds on `CLOCK_BOOTTIME`: monotonic, keeps counting across
/// suspend, unaffected by wall-clock jumps. Pogocache stores every expiry
/// on this clock, so TTLs never move when the system time is changed.
pub fn monotonic_ns() -> i64 {
    read(libc::CLOCK_BOOTTIME)
}

/// Nanoseconds since the Unix epoch (`CLOCK_REALTIME`).
pub fn wall_ns() -> i64 {
    read(libc::CLOCK_REALTIME)
}

fn read(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both clock ids exist on
    // every Linux kernel we support, so the call cannot fail.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec)
}

#[cfg(test)]
mod tests {
    #[test]
    fn clocks_are_plausible() {
        let a = super::monotonic_ns();
        let b = super::monotonic_ns();
        assert!(a > 0 && b >= a);
        // After 2020-01-01.
        assert!(super::wall_ns() > 1_577_836_800_000_000_000);
    }
}
