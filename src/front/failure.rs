//! Why a client's first bytes cannot be routed: the one error the readers
//! of a ClientHello, a request head and a proxy request share. Below them
//! all, and below the front.

/// Why the first bytes cannot be routed.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    BadClientHello(String),
    BadRequest(String),
    TooLarge(String),
    /// A proxy request whose framing could be read two ways (a smuggling
    /// attempt, or a client that must not be guessed at): the destination
    /// it named (`host:port`), and why.
    Framing(String, String),
}

impl Failure {
    /// Its words, whatever kind it is.
    pub fn why(self) -> String {
        match self {
            Failure::BadClientHello(why) | Failure::BadRequest(why) | Failure::TooLarge(why) | Failure::Framing(_, why) => why,
        }
    }
}
