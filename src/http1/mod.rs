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
//! Files: `headers.rs` reads what a head's headers declare (its framing,
//! its `Connection` options, what could be read two ways); `framing.rs`
//! reads the framing as the bytes pass (bodies, response heads);
//! `exchange.rs` is a request and its answer as the forward proxy's
//! connection carries them, built on both.

mod exchange;
mod framing;
mod headers;

pub use exchange::Exchange;
pub use framing::{Body, BodyReader, ResponseReader, MAX_HEAD};
pub use headers::{closes, connection_options, declared, names_framing, unsafe_head, Declared};
