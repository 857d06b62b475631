//! Why a client's first bytes cannot be routed: the one error the readers
//! of a ClientHello, a request head and a proxy request share. Below them
//! all, and below the front.

/// Why the first bytes cannot be routed.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    BadClientHello(String),
    BadRequest(String),
    TooLarge(String),
}
