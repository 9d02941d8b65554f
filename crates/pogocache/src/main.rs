//! The `pogocache` binary: parse the command line, print the banner, start
//! the server, wait for SIGINT/SIGTERM, stop. Everything else lives in the
//! library crates, so tests start the server exactly as this does.

use std::io::Write;
use std::process::ExitCode;

use pogocache_server::{Config, Server, config};

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
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let (cfg, notes) = match config::parse_args(&argv) {
        Ok(v) => v,
        Err(exit) => {
            print!("{}", exit.stdout);
            eprint!("{}", exit.stderr);
            let _ = std::io::stdout().flush();
            return ExitCode::from(exit.code as u8);
        }
    };
    for n in &notes {
        println!("{n}");
    }
    // Block the stop signals in every thread; the main thread takes them
    // synchronously with sigwait.
    let signals = stop_signals();
    for line in cfg.banner() {
        println!("{line}");
    }
    let persist = cfg.persist.clone();
    let server = match Server::start(Config {
        log_startup: true,
        ..cfg
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    println!("* Ready to accept connections");
    let _ = std::io::stdout().flush();
    wait_for(&signals);
    // A second signal during shutdown forces the exit.
    std::thread::spawn(move || {
        wait_for(&signals);
        eprintln!("# User forced shutdown");
        println!("# Pogocache exiting now");
        std::process::exit(0);
    });
    let shared = server.shared().clone();
    // Stop serving first, so the final snapshot holds every acknowledged
    // write (Pogocache saves while still serving, gap H8).
    if let Some(path) = &persist {
        println!("* Saving data to {}, please wait...", path.display());
        let _ = std::io::stdout().flush();
    }
    server.shutdown();
    if let Some(path) = &persist
        && let Err(e) = pogocache_persist::save(&shared.store, path)
    {
        println!("# Save failed: {e}");
        return ExitCode::from(1);
    }
    println!("# Pogocache exiting now");
    ExitCode::SUCCESS
}

fn stop_signals() -> libc::sigset_t {
    // SAFETY: the set is initialised by sigemptyset before use, and
    // pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for(set: &libc::sigset_t) {
    let mut sig = 0;
    // SAFETY: `set` is an initialised signal set and `sig` a valid out-param.
    unsafe { libc::sigwait(set, &mut sig) };
}
