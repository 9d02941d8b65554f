//! Postgres sessions.
//!
//! Owns: the startup and password exchange, simple and extended query
//! flows (statements, portals, parameters, Sync error recovery), the
//! `::bytea`/`::text` output mode, and how each command's reply becomes
//! rows and a CommandComplete tag. Commands run through the one shared
//! command table ([`crate::execute`]) into a recording [`Reply`]; this
//! module turns the recording into Postgres messages. Does not own:
//! framing, tokenizing or message bytes (`pogocache_protocol::postgres`).
//!
//! Divergences, all toward real Postgres (docs/COMPATIBILITY.md): column
//! descriptions come from Describe (statement: ParameterDescription then
//! RowDescription/NoData; portal: RowDescription/NoData) and Execute sends
//! none, as Postgres does, so tokio-postgres and pgx work; errors in the
//! extended flow skip to Sync and send one ReadyForQuery; Close and Flush
//! are supported; CancelRequest closes quietly and GSSENCRequest gets `N`;
//! an unsupported client_encoding gets a message.

use std::collections::HashMap;

use pogocache_protocol::postgres::{
    self as pg, Frame, FrameError, Framed, OID_BYTEA, OID_TEXT, Piece, Reader, Token,
};
use pogocache_protocol::{ArgView, Limits};

use crate::conn::Step;
use crate::table::Cmd;
use crate::{Ctx, Reply, VERSION, execute, session};

/// Prepared statements and portals a session may hold (each bounded, so a
/// client cannot grow server memory without limit).
const MAX_OBJECTS: usize = 10_000;

/// How passwords are requested when `--auth` is set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PgAuth {
    /// AuthenticationCleartextPassword (Pogocache's only method).
    #[default]
    Cleartext,
    /// AuthenticationMD5Password with a random salt.
    Md5,
}

#[derive(Debug)]
enum Stage {
    Startup,
    Password { salt: [u8; 4] },
    Ready,
}

struct Statement {
    tokens: Vec<Token>,
    params: usize,
}

struct Portal {
    statement: Vec<u8>,
    params: Vec<Vec<u8>>,
}

/// Per-connection Postgres state.
pub struct PgSession {
    stage: Stage,
    bytea: bool,
    user: Vec<u8>,
    statements: HashMap<Vec<u8>, Statement>,
    portals: HashMap<Vec<u8>, Portal>,
    /// After an error in the extended flow, skip messages until Sync.
    skip_to_sync: bool,
    /// The protocol a HELLO chose (see `Recorder`).
    resp3: bool,
}

impl Default for PgSession {
    fn default() -> Self {
        PgSession {
            stage: Stage::Startup,
            bytea: false,
            user: Vec::new(),
            statements: HashMap::new(),
            portals: HashMap::new(),
            skip_to_sync: false,
            resp3: false,
        }
    }
}

/// Records a command's reply so it can be rendered as rows.
#[derive(Debug)]
enum Val {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Uint(u64),
    Bulk(Vec<u8>),
    Null,
    Array,
}

/// `resp3`: HELLO's protocol choice, which a Postgres session keeps only
/// so that a later HELLO reports it back.
#[derive(Default)]
struct Recorder(Vec<Val>, bool);

impl Reply for Recorder {
    fn set_resp3(&mut self, on: bool) {
        self.1 = on
    }
    fn resp3(&self) -> bool {
        self.1
    }
    fn simple(&mut self, s: &[u8]) {
        self.0.push(Val::Simple(s.to_vec()))
    }
    fn error(&mut self, e: &[u8]) {
        self.0.push(Val::Error(e.to_vec()))
    }
    fn int(&mut self, n: i64) {
        self.0.push(Val::Int(n))
    }
    fn uint(&mut self, n: u64) {
        self.0.push(Val::Uint(n))
    }
    fn bulk(&mut self, b: &[u8]) {
        self.0.push(Val::Bulk(b.to_vec()))
    }
    fn null(&mut self) {
        self.0.push(Val::Null)
    }
    fn array(&mut self, _n: usize) {
        self.0.push(Val::Array)
    }
}

impl Val {
    /// The value as a column's bytes.
    fn text(&self) -> Vec<u8> {
        match self {
            Val::Simple(b) | Val::Bulk(b) => b.clone(),
            Val::Int(n) => n.to_string().into_bytes(),
            Val::Uint(n) => n.to_string().into_bytes(),
            _ => Vec::new(),
        }
    }
}

fn eq_ic(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// The columns a command's result has, from the command table and, for
/// SET ... GET and DEBUG DETACH, its literal options, so Describe can
/// answer before anything runs.
fn columns(args: &[&[u8]]) -> Option<&'static [&'static str]> {
    let cmd = crate::table::lookup(args.first()?)?;
    let cols: &'static [&'static str] = match cmd {
        Cmd::Set if args.iter().skip(3).any(|a| eq_ic(a, "get")) => &["value"],
        Cmd::Debug if args.get(1).is_some_and(|a| eq_ic(a, "detach")) => &["detach"],
        _ => cmd.spec().columns,
    };
    (!cols.is_empty()).then_some(cols)
}

/// Text pieces of a statement, for [`columns`] (parameters count as
/// empty text).
fn statement_words(tokens: &[Token]) -> Vec<&[u8]> {
    tokens
        .iter()
        .map(|t| match &t.piece {
            Piece::Text(s) => s.as_slice(),
            Piece::Param(_) => &[],
        })
        .collect()
}

fn strip_err(e: &[u8]) -> &[u8] {
    e.strip_prefix(b"ERR ").unwrap_or(e)
}

impl PgSession {
    fn oid(&self) -> i32 {
        if self.bytea { OID_BYTEA } else { OID_TEXT }
    }

    /// Handles one message from the front of `buf`, appending replies to
    /// `out` (the session contract of [`crate::conn`]).
    pub fn step(&mut self, ctx: &mut Ctx<'_>, buf: &[u8], out: &mut Vec<u8>) -> Step {
        let (n, frame) = match pg::frame(buf, &Limits::DEFAULT) {
            Framed::Incomplete { need } => return Step::Incomplete(need),
            Framed::Invalid(e) => {
                pg::error_response(
                    out,
                    if e == FrameError::TooLarge {
                        b"message too large"
                    } else {
                        b"invalid message"
                    },
                );
                pg::ready_for_query(out);
                return Step::Close;
            }
            Framed::Complete(n, f) => (n, f),
        };
        let keep = match frame {
            // SSLRequest with TLS configured: upgrade (an extension; plain
            // Pogocache answers `N`).
            Frame::Startup {
                code: 80_877_103, ..
            } if ctx.shared.settings.tls && matches!(self.stage, Stage::Startup) => {
                out.push(b'S');
                return Step::StartTls(n);
            }
            Frame::Startup { code, payload } => self.startup(ctx, code, payload, out),
            Frame::Message { kind, body } => match self.stage {
                Stage::Ready => self.message(ctx, kind, body, out),
                Stage::Password { salt } if kind == b'p' => self.password(ctx, body, salt, out),
                _ => false, // anything else before authentication: close quietly
            },
        };
        if keep {
            ctx.stats.detail.requests[3].incr();
            Step::Consumed(n)
        } else {
            Step::Close
        }
    }

    fn startup(&mut self, ctx: &mut Ctx<'_>, code: u32, payload: &[u8], out: &mut Vec<u8>) -> bool {
        match code {
            // SSLRequest and GSSENCRequest: no encryption on this port.
            80_877_103 | 80_877_104 => {
                out.push(b'N');
                true
            }
            // CancelRequest: nothing runs long enough to cancel.
            80_877_102 => false,
            196_608 => {
                // name\0value\0 pairs, ended by an empty name (gap F11:
                // an empty value no longer shifts the pairing).
                let mut r = Reader::new(payload);
                while let Some(name) = r.cstr() {
                    if name.is_empty() {
                        break;
                    }
                    let value = r.cstr().unwrap_or_default();
                    if name == b"user" {
                        self.user = value.to_vec();
                    } else if name == b"client_encoding"
                        && !(eq_ic(value, "UTF8")
                            || eq_ic(value, "UTF-8")
                            || eq_ic(value, "SQL_ASCII"))
                    {
                        let enc = String::from_utf8_lossy(value);
                        crate::log::line(format_args!(
                            "# Invalid Postgres client_encoding ({enc})"
                        ));
                        let msg =
                            format!("unsupported client_encoding '{enc}': only UTF8 is supported");
                        pg::error_response(out, msg.as_bytes());
                        pg::ready_for_query(out);
                        return false;
                    }
                }
                if ctx.shared.settings.auth.is_empty() || ctx.session.authed {
                    ctx.session.authed = true;
                    self.ready(out);
                } else {
                    let salt = match ctx.shared.settings.pg_auth {
                        PgAuth::Cleartext => {
                            pg::authentication(out, 3, None);
                            [0; 4]
                        }
                        PgAuth::Md5 => {
                            let s = (pogocache_store::clock::monotonic_ns() as u32
                                ^ std::process::id().rotate_left(16))
                            .to_be_bytes();
                            pg::authentication(out, 5, Some(s));
                            s
                        }
                    };
                    self.stage = Stage::Password { salt };
                }
                true
            }
            other => {
                let msg = format!("Protocol error: unknown magic number {other:08x}");
                pg::error_response(out, msg.as_bytes());
                pg::ready_for_query(out);
                false
            }
        }
    }

    fn ready(&mut self, out: &mut Vec<u8>) {
        pg::authentication(out, 0, None);
        pg::parameter_status(out, "client_encoding", "UTF8");
        pg::parameter_status(out, "server_encoding", "UTF8");
        pg::parameter_status(out, "server_version", &format!("{VERSION} (Pogocache)"));
        pg::ready_for_query(out);
        self.stage = Stage::Ready;
    }

    fn password(
        &mut self,
        ctx: &mut Ctx<'_>,
        body: &[u8],
        salt: [u8; 4],
        out: &mut Vec<u8>,
    ) -> bool {
        let mut r = Reader::new(body);
        let given = r.cstr().unwrap_or_default();
        let want = &ctx.shared.settings.auth;
        let ok = match ctx.shared.settings.pg_auth {
            PgAuth::Cleartext => session::same(given, want),
            PgAuth::Md5 => session::same(given, &md5_response(want, &self.user, salt)),
        };
        ctx.stats.auth_cmds.incr();
        if ok {
            ctx.session.authed = true;
            self.ready(out);
            true
        } else {
            ctx.stats.auth_errors.incr();
            pg::error_response(out, crate::err::WRONGPASS);
            pg::ready_for_query(out);
            false
        }
    }

    fn message(&mut self, ctx: &mut Ctx<'_>, kind: u8, body: &[u8], out: &mut Vec<u8>) -> bool {
        if self.skip_to_sync && !matches!(kind, b'S' | b'X') {
            return true;
        }
        let mut r = Reader::new(body);
        let res: Result<bool, String> = match kind {
            b'Q' => return self.query(ctx, &mut r, out),
            b'P' => self.parse(&mut r, out),
            b'B' => self.bind(&mut r, out),
            b'D' => self.describe(&mut r, out),
            b'E' => self.execute(ctx, &mut r, out),
            b'C' => self.close(&mut r, out),
            b'H' => Ok(true),
            b'S' => {
                self.skip_to_sync = false;
                pg::ready_for_query(out);
                Ok(true)
            }
            b'X' => Ok(false),
            other => {
                pg::error_response(
                    out,
                    format!("unknown message '{}'", other as char).as_bytes(),
                );
                pg::ready_for_query(out);
                Ok(true)
            }
        };
        match res {
            Ok(keep) => keep,
            Err(msg) => {
                pg::error_response(out, msg.as_bytes());
                self.skip_to_sync = true;
                true
            }
        }
    }

    fn query(&mut self, ctx: &mut Ctx<'_>, r: &mut Reader<'_>, out: &mut Vec<u8>) -> bool {
        let Some(q) = r.cstr().filter(|_| r.is_empty()) else {
            pg::error_response(out, b"invalid message format");
            pg::ready_for_query(out);
            return false;
        };
        let result = pg::tokenize(q).and_then(|t| {
            if t.iter().any(|t| matches!(t.piece, Piece::Param(_))) {
                Err("query cannot have parameters".into())
            } else {
                Ok(pg::build_args(&t, None))
            }
        });
        let keep = match result {
            Err(msg) => {
                pg::error_response(out, msg.as_bytes());
                true
            }
            Ok(args) if args.is_empty() => {
                pg::empty_query(out);
                true
            }
            Ok(args) => self.run(ctx, args, true, out),
        };
        if keep {
            pg::ready_for_query(out);
        }
        keep
    }

    fn parse(&mut self, r: &mut Reader<'_>, out: &mut Vec<u8>) -> Result<bool, String> {
        let bad = || "invalid message format".to_string();
        let name = r.cstr().ok_or_else(bad)?;
        if name.len() >= 64 {
            return Err("statement name too large".into());
        }
        let query = r.cstr().ok_or_else(bad)?;
        let n = r.i16().ok_or_else(bad)?;
        for _ in 0..n.max(0) {
            r.i32().ok_or_else(bad)?;
        }
        let tokens = pg::tokenize(query)?;
        let params = pg::param_count(&tokens)?;
        if self.statements.len() >= MAX_OBJECTS && !self.statements.contains_key(name) {
            return Err("too many prepared statements".into());
        }
        self.statements
            .insert(name.to_vec(), Statement { tokens, params });
        pg::parse_complete(out);
        Ok(true)
    }

    fn bind(&mut self, r: &mut Reader<'_>, out: &mut Vec<u8>) -> Result<bool, String> {
        let bad = || "invalid message format".to_string();
        let portal = r.cstr().ok_or_else(bad)?;
        if portal.len() >= 64 {
            return Err("portal name too large".into());
        }
        let statement = r.cstr().ok_or_else(bad)?;
        if statement.len() >= 64 {
            return Err("statement name too large".into());
        }
        let nf = r.i16().ok_or_else(bad)?;
        for _ in 0..nf.max(0) {
            if !matches!(r.i16().ok_or_else(bad)?, 0 | 1) {
                return Err("only text or binary format allowed".into());
            }
        }
        let np = r.i16().ok_or_else(bad)?;
        let mut params = Vec::with_capacity(np.clamp(0, 64) as usize);
        for _ in 0..np.max(0) {
            let len = r.i32().ok_or_else(bad)?;
            // NULL becomes the empty string; bytes are used as sent,
            // whatever the format code (gap F9, kept).
            params.push(if len < 0 {
                Vec::new()
            } else {
                r.bytes(len as usize).ok_or_else(bad)?.to_vec()
            });
        }
        let nr = r.i16().ok_or_else(bad)?;
        for _ in 0..nr.max(0) {
            r.i16().ok_or_else(bad)?;
        }
        if self.portals.len() >= MAX_OBJECTS && !self.portals.contains_key(portal) {
            return Err("too many portals".into());
        }
        self.portals.insert(
            portal.to_vec(),
            Portal {
                statement: statement.to_vec(),
                params,
            },
        );
        pg::bind_complete(out);
        Ok(true)
    }

    fn describe(&mut self, r: &mut Reader<'_>, out: &mut Vec<u8>) -> Result<bool, String> {
        let bad = || "invalid message format".to_string();
        let kind = r.u8().ok_or_else(bad)?;
        let name = r.cstr().ok_or_else(bad)?;
        let statement = match kind {
            b'S' => {
                let st = self.statements.get(name).ok_or("statement not found")?;
                pg::parameter_description(out, st.params, self.oid());
                st
            }
            b'P' => {
                let p = self.portals.get(name).ok_or("portal not found")?;
                self.statements
                    .get(&p.statement)
                    .ok_or("statement not found")?
            }
            other => return Err(format!("unsupported describe type '{}'", other as char)),
        };
        let mut words = statement_words(&statement.tokens);
        // `::bytea GET k` describes the command after the type switch.
        if words.first().is_some_and(|w| w.starts_with(b"::")) {
            words.remove(0);
        }
        match columns(&words) {
            Some(cols) => pg::row_description(out, cols, self.oid()),
            None => pg::no_data(out),
        }
        Ok(true)
    }

    fn execute(
        &mut self,
        ctx: &mut Ctx<'_>,
        r: &mut Reader<'_>,
        out: &mut Vec<u8>,
    ) -> Result<bool, String> {
        let bad = || "invalid message format".to_string();
        let name = r.cstr().ok_or_else(bad)?;
        r.i32().ok_or_else(bad)?; // max_rows: results are never split
        let portal = self.portals.get(name).ok_or("portal not found")?;
        let st = self
            .statements
            .get(&portal.statement)
            .ok_or("statement not found")?;
        if portal.params.len() != st.params {
            return Err("portal params mismatch".into());
        }
        let args = pg::build_args(&st.tokens, Some(&portal.params));
        if args.is_empty() {
            return Ok(true);
        }
        let before = out.len();
        let keep = self.run(ctx, args, false, out);
        if out.get(before) == Some(&b'E') {
            self.skip_to_sync = true;
        }
        Ok(keep)
    }

    fn close(&mut self, r: &mut Reader<'_>, out: &mut Vec<u8>) -> Result<bool, String> {
        let bad = || "invalid message format".to_string();
        let kind = r.u8().ok_or_else(bad)?;
        let name = r.cstr().ok_or_else(bad)?;
        match kind {
            b'S' => self.statements.remove(name).map(|_| ()),
            b'P' => self.portals.remove(name).map(|_| ()),
            other => return Err(format!("unsupported close type '{}'", other as char)),
        };
        pg::close_complete(out);
        Ok(true)
    }

    /// Runs one command (after the BEGIN/`::type` filters) and renders
    /// its result. `simple` adds the RowDescription (the extended flow
    /// sends it at Describe). Returns false to close (QUIT).
    fn run(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut args: Vec<Vec<u8>>,
        simple: bool,
        out: &mut Vec<u8>,
    ) -> bool {
        let first = &args[0];
        for word in ["begin", "rollback", "commit"] {
            if eq_ic(first, word) {
                pg::command_complete(out, &word.to_ascii_uppercase());
                return true;
            }
        }
        if let Some(ty) = first.strip_prefix(b"::") {
            let bytea = if eq_ic(ty, "bytea") || eq_ic(ty, "bytes") {
                true
            } else if eq_ic(ty, "text") {
                false
            } else {
                pg::error_response(
                    out,
                    format!("unknown type '{}'", String::from_utf8_lossy(ty)).as_bytes(),
                );
                return true;
            };
            self.bytea = bytea;
            args.remove(0);
            if args.is_empty() {
                pg::command_complete(out, if bytea { "BYTEA" } else { "TEXT" });
                return true;
            }
        }
        let name = args[0].to_ascii_lowercase();
        match name.as_slice() {
            b"quit" => return false,
            b"monitor" => {
                pg::error_response(out, b"unavailable");
                return true;
            }
            b"select" => {
                let msg = format!("unknown command '{}'", String::from_utf8_lossy(&args[0]));
                pg::error_response(out, msg.as_bytes());
                return true;
            }
            _ => {}
        }
        let ranges: Vec<(u32, u32)> = {
            let mut at = 0u32;
            args.iter()
                .map(|a| {
                    let r = (at, at + a.len() as u32);
                    at = r.1;
                    r
                })
                .collect()
        };
        let base = args.concat();
        let view = ArgView::from_parts(&base, &ranges);
        let mut rec = Recorder(Vec::new(), self.resp3);
        // Nothing can be delivered to a Postgres client later: pub/sub is
        // refused and WAIT answers at once.
        let wake = ctx.wake.take();
        execute(ctx, view, &mut rec);
        ctx.wake = wake;
        self.resp3 = rec.1;
        let words: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        self.render(&name, &words, &rec.0, simple, out);
        true
    }

    fn render(&self, name: &[u8], args: &[&[u8]], vals: &[Val], simple: bool, out: &mut Vec<u8>) {
        if let Some(Val::Error(e)) = vals.first() {
            pg::error_response(out, strip_err(e));
            return;
        }
        if simple && let Some(cols) = columns(args) {
            pg::row_description(out, cols, self.oid());
        }
        let upper = String::from_utf8_lossy(name).to_ascii_uppercase();
        let count = |v: Option<&Val>| match v {
            Some(Val::Int(n)) => *n,
            _ => 0,
        };
        let tag = match crate::table::lookup(name) {
            Some(Cmd::Set) => match vals.first() {
                Some(Val::Bulk(v)) => {
                    pg::data_row(out, &[v]);
                    "SET 1".to_string()
                }
                Some(Val::Simple(_)) => "SET 1".into(),
                _ => "SET 0".into(),
            },
            Some(Cmd::Setex) => "SETEX 1".into(),
            Some(Cmd::Get) => match vals.first() {
                Some(Val::Bulk(v)) => {
                    pg::data_row(out, &[v]);
                    "GET 1".into()
                }
                _ => "GET 0".into(),
            },
            Some(c @ (Cmd::Mget | Cmd::Mgets)) => {
                let meta = c == Cmd::Mgets;
                let mut hits = 0;
                let mut it = vals.iter().skip(1);
                for key in args.iter().skip(1) {
                    match it.next() {
                        Some(Val::Bulk(v)) => {
                            pg::data_row(out, &[key, v]);
                            hits += 1;
                        }
                        Some(Val::Array) if meta => {
                            let (f, c, v) = (it.next(), it.next(), it.next());
                            let (f, c, v) = (f.map(Val::text), c.map(Val::text), v.map(Val::text));
                            pg::data_row(
                                out,
                                &[
                                    key,
                                    &f.unwrap_or_default(),
                                    &c.unwrap_or_default(),
                                    &v.unwrap_or_default(),
                                ],
                            );
                            hits += 1;
                        }
                        _ => {}
                    }
                }
                format!("MGET {hits}")
            }
            Some(Cmd::Ttl | Cmd::Pttl) => match vals.first() {
                Some(Val::Int(-2)) | None => format!("{upper} 0"),
                Some(v) => {
                    pg::data_row(out, &[&v.text()]);
                    format!("{upper} 1")
                }
            },
            Some(Cmd::Exists | Cmd::Dbsize) => {
                pg::data_row(out, &[&vals.first().map(Val::text).unwrap_or_default()]);
                upper
            }
            Some(
                Cmd::Incr
                | Cmd::Decr
                | Cmd::Incrby
                | Cmd::Decrby
                | Cmd::Uincr
                | Cmd::Udecr
                | Cmd::Uincrby
                | Cmd::Udecrby,
            ) => {
                pg::data_row(out, &[&vals.first().map(Val::text).unwrap_or_default()]);
                upper.trim_start_matches('U').to_string()
            }
            Some(Cmd::Del | Cmd::Expire | Cmd::Touch | Cmd::Append | Cmd::Prepend) => {
                format!("{upper} {}", count(vals.first()))
            }
            Some(Cmd::Keys) => {
                let keys: Vec<Vec<u8>> = vals.iter().skip(1).map(Val::text).collect();
                for k in &keys {
                    pg::data_row(out, &[k]);
                }
                format!("KEYS {}", keys.len())
            }
            Some(Cmd::Scan) => {
                let cursor = vals.get(1).map(Val::text).unwrap_or_default();
                let keys: Vec<Vec<u8>> = vals.iter().skip(3).map(Val::text).collect();
                for k in &keys {
                    pg::data_row(out, &[k, &cursor]);
                }
                format!("SCAN {}", keys.len())
            }
            Some(Cmd::Stats) => {
                let cells: Vec<Vec<u8>> = vals
                    .iter()
                    .filter(|v| !matches!(v, Val::Array))
                    .map(Val::text)
                    .collect();
                for pair in cells.chunks(2) {
                    if let [k, v] = pair {
                        pg::data_row(out, &[k, v]);
                    }
                }
                format!("STATS {}", cells.len() / 2)
            }
            Some(c @ (Cmd::Ping | Cmd::Echo | Cmd::Version)) => {
                pg::data_row(out, &[&vals.first().map(Val::text).unwrap_or_default()]);
                if c == Cmd::Version {
                    "VERSION 1".into()
                } else {
                    upper
                }
            }
            Some(Cmd::Flush | Cmd::Sweep | Cmd::Purge) => {
                let mut asynchronous = false;
                let mut i = 1;
                while i < args.len() {
                    if eq_ic(args[i], "async") {
                        asynchronous = true;
                    } else if eq_ic(args[i], "sync") {
                        asynchronous = false;
                    } else if eq_ic(args[i], "delay") {
                        i += 1;
                        if args
                            .get(i)
                            .is_some_and(|d| d.iter().any(|&c| (b'1'..=b'9').contains(&c)))
                        {
                            asynchronous = true;
                        }
                    }
                    i += 1;
                }
                format!("{upper} {}", if asynchronous { "ASYNC" } else { "SYNC" })
            }
            Some(Cmd::Save | Cmd::Load) => format!("{upper} OK"),
            Some(Cmd::Auth) => "AUTH OK".into(),
            Some(Cmd::Debug) => {
                if args.get(1).is_some_and(|a| eq_ic(a, "detach")) {
                    pg::data_row(out, &[&vals.first().map(Val::text).unwrap_or_default()]);
                    "DEBUG DETACH".into()
                } else {
                    format!(
                        "DEBUG POPULATE {}",
                        String::from_utf8_lossy(args.get(2).copied().unwrap_or_default())
                    )
                }
            }
            _ => upper,
        };
        pg::command_complete(out, &tag);
    }
}

/// `"md5" + hex(md5(hex(md5(password + user)) + salt))`, what a client
/// answers to AuthenticationMD5Password.
fn md5_response(password: &[u8], user: &[u8], salt: [u8; 4]) -> Vec<u8> {
    use md5::{Digest, Md5};
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let inner = hex(&Md5::digest([password, user].concat()));
    let outer = hex(&Md5::digest([inner.as_bytes(), &salt].concat()));
    format!("md5{outer}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_the_postgres_formula() {
        // Known answer computed with PostgreSQL's documented formula.
        let r = md5_response(b"secret", b"u", [1, 2, 3, 4]);
        assert_eq!(r.len(), 35);
        assert!(r.starts_with(b"md5"));
        assert_ne!(r, md5_response(b"secret", b"v", [1, 2, 3, 4]));
    }

    #[test]
    fn describe_columns() {
        assert_eq!(columns(&[b"GET", b"k"]), Some(&["value"][..]));
        assert_eq!(columns(&[b"set", b"k", b"v"]), None);
        assert_eq!(columns(&[b"set", b"k", b"v", b"get"]), Some(&["value"][..]));
        assert_eq!(
            columns(&[b"MGETS", b"k"]),
            Some(&["key", "flags", "cas", "value"][..])
        );
        assert_eq!(columns(&[b"DEL", b"k"]), None);
    }
}
