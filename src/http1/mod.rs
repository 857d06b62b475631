//! HTTP/1.1 message framing (RFC 9112 section 6): where a request's or a
//! response's body ends in a stream of bytes, found as the bytes pass and
//! never by holding them (only a response head, at most `MAX_HEAD`, is kept
//! while it arrives). It is what lets the forward proxy check each request of
//! a kept-alive connection on its own: the bytes after one message's end
//! belong to the next, and go nowhere until that one is checked.
//!
//! ```text
//! a body:      Length(n) ─▶ Done         Chunked: size[;ext] CRLF data CRLF ... 0 CRLF [trailers] CRLF
//! a response:  Head ─▶ (1xx: Head again) ─▶ Body ─▶ Done      (UntilClose: ends with the stream)
//! ```
//! Framing that two readers could read two ways is an error, never a guess.
//!
//! Files: `framing.rs` reads the framing (bodies, response heads, the
//! headers that declare them); `exchange.rs` is a request and its answer as
//! the forward proxy's connection carries them, built on it.

mod exchange;
mod framing;

pub use exchange::Exchange;
pub use framing::{closes, connection_options, declared, Body, BodyReader, Declared, ResponseReader, MAX_HEAD};
