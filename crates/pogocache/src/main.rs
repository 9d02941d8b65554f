//! The `pogocache` binary: parse the command line, print the banner, start
//! the server, wait for SIGINT/SIGTERM, stop. Everything else lives in the
//! library crates, so tests start the server exactly as this does.

use std::io::Write;
use std::process::ExitCode;

use pogocache_server::{Config, Server, config, log};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ALLOCATOR: &str = if cfg!(feature = "mimalloc") {
    "mimalloc"
} else {
    "stock"
};

fn main() -> ExitCode {
    let _ = config::ALLOCATOR.set(ALLOCATOR);
    pogocache_server::install_panic_hook();
    let argv = match with_env_flags(std::env::args().skip(1).collect()) {
        Ok(argv) => argv,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(1);
        }
    };
    let (cfg, notes) = match config::parse_args(&argv) {
        Ok(v) => v,
        Err(exit) => {
            print!("{}", exit.stdout);
            eprint!("{}", exit.stderr);
            let _ = std::io::stdout().flush();
            return ExitCode::from(exit.code as u8);
        }
    };
    if cfg.health {
        return health(&cfg);
    }
    small_limit_without_huge_pages(cfg.maxmemory);
    log::set_json(cfg.log_json);
    log::set_command_sample(cfg.log_sample);
    for n in &notes {
        log::line(format_args!("{n}"));
    }
    // Block the stop signals in every thread; the main thread takes them
    // synchronously with sigwait.
    let signals = stop_signals(cfg.cluster);
    for line in cfg.banner() {
        log::line(format_args!("{line}"));
    }
    let server = match Server::start(Config {
        log_startup: true,
        ..cfg
    }) {
        Ok(s) => s,
        Err(e) => {
            log::eline(format_args!("{e}"));
            return ExitCode::from(1);
        }
    };
    log::line(format_args!("* Ready to accept connections"));
    let _ = std::io::stdout().flush();
    // SIGHUP (taken only in cluster mode) re-reads the nodes file.
    while wait_for(&signals) == libc::SIGHUP {
        let _ = server.reload_cluster();
        let _ = std::io::stdout().flush();
    }
    // A second signal during shutdown forces the exit.
    std::thread::spawn(move || {
        while wait_for(&signals) == libc::SIGHUP {}
        log::eline(format_args!("# User forced shutdown"));
        log::line(format_args!("# Pogocache exiting now"));
        std::process::exit(0);
    });
    if let Err(e) = server.shutdown() {
        log::line(format_args!("{e}"));
        return ExitCode::from(1);
    }
    log::line(format_args!("# Pogocache exiting now"));
    ExitCode::SUCCESS
}

/// Container conveniences (there is no shell in the image to expand
/// variables), the contract of Pogocache's image and Kubernetes operator:
/// `POGOCACHE_AUTH_PASSWORD` sets the password (as `--auth`), or
/// `POGOCACHE_AUTH_FILE` reads it from a file (`--authfile <path>`), never
/// both; `POGOCACHE_EXTRA_FLAGS` appends whitespace-separated flags, after
/// the command line so they win (the last value of a flag is used). The
/// flags are built in this process, never passed to another, so the
/// password does not appear in `/proc/<pid>/cmdline`; nothing prints it.
fn with_env_flags(mut argv: Vec<String>) -> Result<Vec<String>, String> {
    let password = std::env::var("POGOCACHE_AUTH_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let file = std::env::var("POGOCACHE_AUTH_FILE")
        .ok()
        .filter(|p| !p.is_empty());
    match (password, file) {
        (Some(_), Some(_)) => {
            return Err(
                "# POGOCACHE_AUTH_PASSWORD and POGOCACHE_AUTH_FILE are both set: \
                        set only one"
                    .into(),
            );
        }
        (Some(password), None) => {
            argv.push("--auth".into());
            argv.push(password);
        }
        (None, Some(path)) => {
            argv.push("--authfile".into());
            argv.push(path);
        }
        (None, None) => {}
    }
    // The primary's password for a replica, kept out of the command line
    // the same way.
    if let Some(p) = std::env::var("POGOCACHE_PRIMARY_AUTH")
        .ok()
        .filter(|p| !p.is_empty())
    {
        argv.push("--primaryauth".into());
        argv.push(p);
    }
    if let Ok(extra) = std::env::var("POGOCACHE_EXTRA_FLAGS") {
        argv.extend(extra.split_whitespace().map(String::from));
    }
    Ok(argv)
}

/// `--health`: connect to the configured server, authenticate if a
/// password is configured, and expect `+PONG` to a PING. Exit 0 when the
/// server answers, 1 otherwise: what a container HEALTHCHECK needs (a
/// `--help` check proves nothing about the server).
fn health(cfg: &Config) -> ExitCode {
    let timeout = std::time::Duration::from_secs(2);
    let mut req = Vec::new();
    if !cfg.auth.is_empty() {
        req.extend_from_slice(
            format!(
                "*2\r\n$4\r\nAUTH\r\n${}\r\n{}\r\n",
                cfg.auth.len(),
                cfg.auth
            )
            .as_bytes(),
        );
    }
    req.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    let want: &[u8] = if cfg.auth.is_empty() {
        b"+PONG\r\n"
    } else {
        b"+OK\r\n+PONG\r\n"
    };
    let probe = |s: &mut dyn ReadWrite| -> std::io::Result<bool> {
        s.write_all(&req)?;
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got)?;
        Ok(got == want)
    };
    let result = match (cfg.port, &cfg.unixsocket) {
        (Some(port), _) => {
            // A server bound to every interface is probed on loopback.
            let host = match cfg.host.as_str() {
                "0.0.0.0" | "localhost" => "127.0.0.1",
                "::" => "::1",
                h => h,
            };
            std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
                .and_then(|mut a| a.next().ok_or_else(|| std::io::Error::other("no address")))
                .and_then(|a| std::net::TcpStream::connect_timeout(&a, timeout))
                .and_then(|mut s| {
                    s.set_read_timeout(Some(timeout))?;
                    probe(&mut s)
                })
        }
        (None, Some(path)) => std::os::unix::net::UnixStream::connect(path).and_then(|mut s| {
            s.set_read_timeout(Some(timeout))?;
            probe(&mut s)
        }),
        (None, None) => Ok(false),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("# health: unexpected reply");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("# health: {e}");
            ExitCode::from(1)
        }
    }
}

/// Under a `--maxmemory` below 1 GiB, transparent huge pages are turned
/// off for this process. Why: the allocator's arenas then fault in 2 MiB
/// at a time, and after evictions churn the store, each huge page stays
/// resident while it holds any live entry. Under a 64 MiB limit that left
/// RSS at the limit with only 14-25 MiB of 100-byte entries
/// (tests/maxmemory.rs), because the limit is enforced on RSS. Above 1 GiB a huge
/// page is a small part of the budget and the TLB savings win, so large
/// caches keep them.
fn small_limit_without_huge_pages(maxmemory: Option<u64>) {
    if maxmemory.is_some_and(|m| m < 1 << 30) {
        // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integers and
        // changes only this process's THP policy.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}

/// SIGINT and SIGTERM, and SIGHUP when `hup` (cluster mode reloads its
/// nodes file on it; otherwise SIGHUP keeps its default action, as in
/// Pogocache).
fn stop_signals(hup: bool) -> libc::sigset_t {
    // SAFETY: the set is initialised by sigemptyset before use, and
    // pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if hup {
            libc::sigaddset(&mut set, libc::SIGHUP);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for(set: &libc::sigset_t) -> i32 {
    let mut sig = 0;
    // SAFETY: `set` is an initialised signal set and `sig` a valid out-param.
    unsafe { libc::sigwait(set, &mut sig) };
    sig
}
