//! One plain request through the forward proxy and its answer: the framing
//! of each direction (`relay::Framing`), so that the connection carries
//! exactly this request to this destination and this answer back, and then
//! goes back to the front with whatever the client sent after the request
//! (its next request, checked on its own like the first).

use super::framing::{Body, BodyReader, ResponseReader};
use crate::relay::Framing;
use crate::secrets::Redactor;

/// A request on its way and the answer to it (boxed in the connection).
#[derive(Debug)]
pub struct Exchange {
    pub request: Request,
    pub response: Response,
    /// The client asked to close after this answer (`Connection: close`, or
    /// HTTP/1.0 without keep-alive).
    pub client_close: bool,
    /// A request inside a tunnel that carries HTTP: the tunnel's
    /// destination, which the client's next request must name too
    /// (`crate::front::Front::pinned`).
    pub pinned: Option<(String, u16)>,
    /// The request's first bytes as the client sent them, where secrets
    /// were swapped in: what the traffic dump shows instead.
    pub shown: Option<Vec<u8>>,
}

/// The client->destination side: the request's body, and what follows it.
#[derive(Debug)]
pub struct Request {
    body: BodyReader,
    /// Bytes the client sent past this request: the start of its next one.
    /// At most what one read took past the end (a buffer), for the
    /// direction reads nothing more once the request has ended.
    pub leftover: Vec<u8>,
}

/// The destination->client side: the answer, whose end ends the exchange.
#[derive(Debug)]
pub struct Response {
    pub reader: ResponseReader,
    /// Bytes came past the answer's end (its connection is not used again).
    pub excess: bool,
    /// Where secrets were swapped into the request (`crate::secrets`): what
    /// puts their placeholders back over any value the answer echoes.
    pub redactor: Option<Redactor>,
}

impl Exchange {
    /// A request whose head is read: its body is delimited by `body`; a
    /// `HEAD` request (`to_head`) gets an answer without one; only one that
    /// asked for an `upgrade` may be answered 101.
    pub fn new(body: Body, to_head: bool, client_close: bool, upgrade: bool) -> Exchange {
        let reader = ResponseReader::new(to_head).with_upgrade(upgrade);
        Exchange { request: Request { body: BodyReader::new(body), leftover: Vec::new() }, response: Response { reader, excess: false, redactor: None }, client_close, pinned: None, shown: None }
    }

    /// The answer is complete and the client's connection may carry
    /// another request: neither side asked to close, and the request was
    /// sent whole (a destination that answered early leaves it unfinished).
    pub fn goes_on(&self) -> bool {
        self.response.done() && self.request.done() && !self.client_close && !self.response.reader.close
    }

    /// The destination's connection may carry another request: the answer
    /// ended by its framing and said nothing of closing, nothing came after
    /// it, the request went whole, and no upgrade took the connection.
    pub fn upstream_reusable(&self) -> bool {
        self.response.done() && self.request.done() && !self.response.reader.close && !self.response.excess && self.response.reader.status != Some(101)
    }
}

impl Framing for Request {
    fn feed(&mut self, bytes: &mut [u8]) -> Result<usize, String> {
        let used = self.body.feed(bytes)?;
        self.leftover.extend_from_slice(bytes.get(used..).unwrap_or_default());
        Ok(used)
    }

    fn done(&self) -> bool {
        self.body.done()
    }
}

impl Framing for Response {
    /// Bytes past the answer's end are dropped: nothing was asked for them,
    /// and the destination's connection is not used again. A secret's
    /// value in them (head or body) is first replaced by its placeholder.
    fn feed(&mut self, bytes: &mut [u8]) -> Result<usize, String> {
        let used = match self.redactor.as_mut() {
            None => self.reader.feed(bytes)?,
            Some(redactor) => {
                // The answer's own bytes, read as one stream: a value split
                // by a chunk size line is still found (replacing keeps each
                // byte's place, so the framing just read stays true).
                let mut content = Vec::new();
                let used = self.reader.feed_marking(bytes, &mut |r| content.push(r))?;
                for r in content {
                    if let Some(piece) = bytes.get_mut(r) {
                        redactor.redact(piece);
                    }
                }
                used
            }
        };
        self.excess |= used < bytes.len();
        Ok(used)
    }

    fn done(&self) -> bool {
        self.reader.done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_request_is_kept_and_the_exchange_goes_on_only_when_both_may() {
        let mut x = Exchange::new(Body::Length(3), false, false, false);
        assert_eq!(x.request.feed(&mut b"abcGET http://b.test/ HTTP/1.1\r\n".to_vec()), Ok(3));
        assert!(x.request.done());
        assert_eq!(x.request.leftover, b"GET http://b.test/ HTTP/1.1\r\n");
        assert!(!x.goes_on(), "no answer yet");
        assert_eq!(x.response.feed(&mut b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxJUNK".to_vec()), Ok(39));
        assert!(x.goes_on());
        assert!(!x.upstream_reusable(), "bytes came after the answer");
        let mut clean = Exchange::new(Body::Empty, false, false, false);
        clean.response.feed(&mut b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx".to_vec()).unwrap();
        assert!(clean.goes_on() && clean.upstream_reusable());
        let mut closing_origin = Exchange::new(Body::Empty, false, false, false);
        closing_origin.response.feed(&mut b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx".to_vec()).unwrap();
        assert!(!closing_origin.upstream_reusable());
        let mut closing = Exchange::new(Body::Empty, false, true, false);
        closing.response.feed(&mut b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()).unwrap();
        assert!(!closing.goes_on(), "the client asked to close");
        let mut early = Exchange::new(Body::Chunked, false, false, false);
        early.response.feed(&mut b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n".to_vec()).unwrap();
        assert!(early.response.done() && !early.goes_on(), "the request was not sent whole");
    }
}
