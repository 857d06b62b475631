//! The build without TLS (`cargo build --no-default-features`): the same
//! names as `tls.rs`, none of them able to make a session. A route that
//! asks for TLS (`cert=`, `upstream-tls`) is refused at start, and by a
//! reload, in one line; everything else works as in the default build.
//! A file of its own so that the choice is made once, in `lib.rs`, and
//! no other file says `cfg` for it.
//!
//! `Session`, `ServerConfig` and `Origin` have no values here, so the code
//! that would use one cannot run: its bodies say so to the compiler
//! (`match *x {}`), and nothing needs to be checked at run time.

use std::io;
use std::sync::Arc;

use crate::relay::Endpoint;
use crate::sys::Stream;

const NO_TLS: &str = "this build has no TLS (it was built without the `tls` feature): cert=, key= and upstream-tls need the default build";

/// One side's TLS session: none can exist in this build.
pub enum Session {}
/// A route's TLS server configuration: none can be made.
pub enum ServerConfig {}
/// An originating route's TLS client side: none can be made.
pub enum Origin {}

/// What opens TLS for `open=`: none can be made.
#[derive(Debug)]
pub enum Opener {}

/// Whether `opener` made the CA or found it.
#[derive(Debug, PartialEq, Eq)]
pub enum Made {
    Kept,
    New,
}

pub fn opener(_ca_dir: &str, _upstream_ca: Option<&str>) -> Result<(Opener, Made), String> {
    Err(format!("open= and --make-ca: {NO_TLS}"))
}

impl Opener {
    pub fn cert_file(&self) -> &str {
        match *self {}
    }
    pub fn accept(&self, _name: &str, _already_read: &[u8]) -> io::Result<Session> {
        match *self {}
    }
    pub fn connect(&self, _name: &str) -> io::Result<Session> {
        match *self {}
    }
}

pub fn make_ca(_dir: &str) -> Result<(Made, String), String> {
    Err(format!("--make-ca: {NO_TLS}"))
}

/// An originating route's options, as in `tls.rs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Upstream<'a> {
    pub ca: Option<&'a str>,
    pub name: Option<&'a str>,
    pub insecure: bool,
}

pub fn server_config(_cert: &str, _key: &str, _alpn: &[String]) -> Result<Arc<ServerConfig>, String> {
    Err(NO_TLS.to_string())
}

pub fn origin(route: &str, _up: &Upstream<'_>, _first_upstream: Option<&str>) -> Result<Origin, String> {
    Err(format!("{route}: {NO_TLS}"))
}

pub fn connect(origin: &Origin) -> io::Result<Session> {
    match *origin {}
}

pub fn accept(config: &Arc<ServerConfig>, _already_read: &[u8]) -> io::Result<Session> {
    match **config {}
}

pub fn tls_failure(_e: &io::Error) -> Option<String> {
    None
}

pub fn flush(_stream: &Stream, tls: &mut Session) -> io::Result<bool> {
    match *tls {}
}

pub fn tell(_stream: &Stream, tls: &mut Session, _bytes: &[u8]) {
    match *tls {}
}

pub fn quiet_and_open(_stream: &Stream, tls: &mut Session) -> bool {
    match *tls {}
}

pub fn wants_write(tls: &Session) -> bool {
    match *tls {}
}

pub fn has_plaintext(tls: &mut Session) -> bool {
    match *tls {}
}

/// A socket through its TLS state, as in `tls.rs`.
pub struct TlsEnd<'a> {
    pub stream: &'a Stream,
    pub tls: &'a mut Session,
}

impl Endpoint for TlsEnd<'_> {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        match *self.tls {}
    }
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        match *self.tls {}
    }
    fn shutdown_write(&mut self) -> io::Result<()> {
        match *self.tls {}
    }
}

/// No SHA-256 without ring: derived placeholders (`secrets`) need the default build.
pub fn sha256(_bytes: &[u8]) -> Result<[u8; 32], String> {
    Err("this build has no TLS (it was built without the `tls` feature): --secrets needs the default build".to_string())
}
