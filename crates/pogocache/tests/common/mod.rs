//! Helpers shared by the tests that run the real binary.

#![allow(dead_code)]

use std::io::BufRead;

/// Reads the server's log up to its ready line (the server's own signal
/// that it accepts connections, so nothing sleeps). Returns what was read,
/// or, if the server exited first, `Err` with the log so far.
pub fn until_ready(out: &mut impl BufRead) -> Result<String, String> {
    let mut log = String::new();
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            return Err(log);
        }
        log.push_str(&line);
        if line == "* Ready to accept connections\n" {
            return Ok(log);
        }
    }
}
