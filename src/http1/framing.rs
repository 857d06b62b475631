//! HTTP/1.1 message framing (RFC 9112 section 6), as the bytes pass: a
//! body's end (`BodyReader`), a response's head and end (`ResponseReader`).
//! What a message's headers declare is `headers.rs`'s. The room's tour is
//! in `mod.rs`.

use super::headers::{closes, connection_options, declared, head_end, names_framing, unsafe_head, Declared};

/// The largest response head taken (status line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// The longest chunk-size line extension or trailer line taken.
const MAX_LINE: u32 = 4096;

/// How a message's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    Empty,
    Length(u64),
    Chunked,
    /// Until the sender closes (a response without a length).
    UntilClose,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Length(u64),
    /// Hex digits of a chunk size so far (and how many).
    Size(u64, u8),
    /// A chunk extension of the chunk of this size, up to its CR (bytes so far).
    Ext(u64, u32),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    /// After the last chunk: a trailer line, or the CRLF that ends all.
    LineStart,
    /// A trailer field's name so far (bytes of the line so far).
    TrailerName(u32),
    /// A trailer field's value, after its colon (bytes of the line so far).
    Trailer(u32),
    TrailerLf,
    EndLf,
    UntilClose,
    Done,
}

/// Where a body ends, as its bytes pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyReader {
    state: State,
}

impl BodyReader {
    pub fn new(body: Body) -> BodyReader {
        let state = match body {
            Body::Empty | Body::Length(0) => State::Done,
            Body::Length(n) => State::Length(n),
            Body::Chunked => State::Size(0, 0),
            Body::UntilClose => State::UntilClose,
        };
        BodyReader { state }
    }

    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// How many of `bytes` belong to the body: all of them until it ends.
    /// `Err`: a chunked body that is not well formed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<usize, String> {
        self.feed_marking(bytes, &mut |_| {})
    }

    /// The same, telling `content` where the body's own bytes are (its
    /// data, not the chunked framing around it), as ranges of `bytes`.
    pub fn feed_marking(&mut self, bytes: &[u8], content: &mut dyn FnMut(std::ops::Range<usize>)) -> Result<usize, String> {
        let mut used = 0;
        while used < bytes.len() && self.state != State::Done {
            let rest = bytes.get(used..).unwrap_or_default();
            // Whole runs of data at once; the rest a byte at a time.
            match self.state {
                State::Length(n) | State::Data(n) => {
                    let take = n.min(rest.len() as u64);
                    content(used..used + take as usize);
                    used += take as usize;
                    let left = n - take;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), _) => State::Length(left),
                        (_, 0) => State::DataCr,
                        _ => State::Data(left),
                    };
                    continue;
                }
                State::UntilClose => {
                    content(used..bytes.len());
                    return Ok(bytes.len());
                }
                _ => {}
            }
            let Some(&b) = rest.first() else { break };
            used += 1;
            self.state = step(self.state, b)?;
        }
        Ok(used)
    }
}

/// One byte of a chunked body's framing.
fn step(state: State, b: u8) -> Result<State, String> {
    let bad = |what: &str| Err(format!("a bad chunked body: {what} (byte {:?})", b.escape_ascii().to_string()));
    Ok(match state {
        State::Size(value, digits) => match (b as char).to_digit(16) {
            Some(_) if digits >= 15 => return bad("a chunk size over 15 hex digits"),
            Some(d) => State::Size(value << 4 | u64::from(d), digits + 1),
            None if digits == 0 => return bad("a chunk size that is not hex"),
            None if b == b'\r' => State::SizeLf(value),
            None if b == b'\n' => return bad("a bare LF after a chunk size (lines end in CRLF)"),
            None if matches!(b, b';' | b' ' | b'\t') => State::Ext(value, 0),
            None => return bad("a chunk size that is not hex"),
        },
        State::Ext(_, n) if n >= MAX_LINE => return bad("a chunk extension over 4 KiB"),
        State::Ext(_, _) if b == b'\n' => return bad("a bare LF"),
        State::Ext(size, _) if b == b'\r' => State::SizeLf(size),
        State::Ext(size, n) => State::Ext(size, n + 1),
        State::SizeLf(_) if b != b'\n' => return bad("a chunk size line not ending in CRLF"),
        State::SizeLf(0) => State::LineStart,
        State::SizeLf(size) => State::Data(size),
        State::DataCr if b == b'\r' => State::DataLf,
        State::DataLf if b == b'\n' => State::Size(0, 0),
        State::DataCr | State::DataLf => return bad("chunk data longer than its size"),
        State::LineStart if b == b'\r' => State::EndLf,
        State::LineStart | State::TrailerName(_) | State::Trailer(_) if b == b'\n' => return bad("a bare LF"),
        // A trailer line is a field, `name: value` (RFC 9112 section 7.1.2):
        // an origin that skips trailers (or a CRLF after the last chunk)
        // would read a line that is not one, `GET /x HTTP/1.1`, as a request.
        State::LineStart | State::TrailerName(_) if !is_tchar(b) && b != b':' => return bad("a trailer line that is not a field (name: value)"),
        State::LineStart if b == b':' => return bad("a trailer line that is not a field (name: value)"),
        State::LineStart => State::TrailerName(1),
        State::TrailerName(n) | State::Trailer(n) if n >= MAX_LINE => return bad("a trailer line over 4 KiB"),
        State::TrailerName(n) if b == b':' => State::Trailer(n + 1),
        State::TrailerName(n) => State::TrailerName(n + 1),
        State::Trailer(_) if b == b'\r' => State::TrailerLf,
        State::Trailer(n) => State::Trailer(n + 1),
        State::TrailerLf if b == b'\n' => State::LineStart,
        State::EndLf if b == b'\n' => State::Done,
        State::TrailerLf | State::EndLf => return bad("a line not ending in CRLF"),
        State::Length(_) | State::Data(_) | State::UntilClose | State::Done => state,
    })
}

/// A byte of a token, as a field name is spelt (RFC 9110 section 5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Where a response ends: its head (and any 1xx heads before it), then its
/// body as the head says (RFC 9112 section 6.3).
#[derive(Debug)]
pub struct ResponseReader {
    /// The head so far, while it arrives.
    head: Vec<u8>,
    /// `None` while reading a head; then the body.
    body: Option<BodyReader>,
    /// The request was HEAD: no response to it has a body.
    to_head: bool,
    /// The request asked for an upgrade (a websocket): only then may the
    /// answer be 101 and the connection become the upgraded protocol's.
    upgrade: bool,
    /// The final response's status, once its head is read.
    pub status: Option<u16>,
    /// The connection ends after this response: it said `Connection:
    /// close`, is HTTP/1.0 without keep-alive, or is delimited by the close.
    pub close: bool,
}

impl ResponseReader {
    pub fn new(to_head: bool) -> ResponseReader {
        ResponseReader { head: Vec::new(), body: None, to_head, upgrade: false, status: None, close: false }
    }

    /// The same, for a request that asked for an upgrade (`upgrade`) or not.
    pub fn with_upgrade(self, upgrade: bool) -> ResponseReader {
        ResponseReader { upgrade, ..self }
    }

    pub fn done(&self) -> bool {
        self.body.as_ref().is_some_and(BodyReader::done)
    }

    /// How many of `bytes` belong to this response. `Err`: a head or
    /// framing that cannot be trusted (the connection must end).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<usize, String> {
        self.feed_marking(bytes, &mut |_| {})
    }

    /// The same, telling `content` where the response's own bytes are: its
    /// heads, and its body's data without the chunked framing around it
    /// (what a reader of the answer sees, whose pieces a chunk size line
    /// may split: `secrets`' redactor reads them as one stream).
    pub fn feed_marking(&mut self, bytes: &[u8], content: &mut dyn FnMut(std::ops::Range<usize>)) -> Result<usize, String> {
        let mut used = 0;
        while used < bytes.len() && !self.done() {
            let rest = bytes.get(used..).unwrap_or_default();
            if let Some(body) = &mut self.body {
                let at = used;
                used += body.feed_marking(rest, &mut |r| content(at + r.start..at + r.end))?;
                continue;
            }
            if self.head.is_empty() {
                // The usual case, a whole head in one read: read where it
                // lies, not copied (with the body after it) to be read.
                let window = rest.get(..MAX_HEAD.min(rest.len())).unwrap_or_default();
                if let Some(end) = head_end(window) {
                    content(used..used + end);
                    used += end;
                    self.body = self.framing(window.get(..end).unwrap_or_default())?.map(BodyReader::new);
                    continue;
                }
            }
            // Look for the blank line from just before the new bytes.
            let from = self.head.len().saturating_sub(3);
            let take = rest.len().min(MAX_HEAD + 1 - self.head.len());
            self.head.extend_from_slice(rest.get(..take).unwrap_or_default());
            let Some(end) = self.head.get(from..).and_then(head_end).map(|p| from + p) else {
                if self.head.len() > MAX_HEAD {
                    return Err(format!("a response head over {MAX_HEAD} bytes"));
                }
                content(used..used + take);
                used += take;
                continue;
            };
            // Only the bytes up to the blank line are the head's.
            let of_head = take - (self.head.len() - end);
            content(used..used + of_head);
            used += of_head;
            self.head.truncate(end);
            let head = std::mem::take(&mut self.head);
            self.body = self.framing(&head)?.map(BodyReader::new);
        }
        Ok(used)
    }

    /// What a complete head (`head`) says of the body; `None` for
    /// an interim (1xx) response: another head follows.
    fn framing(&mut self, head: &[u8]) -> Result<Option<Body>, String> {
        let mut headers = [httparse::EMPTY_HEADER; 100];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err("a response head cut short".into()),
            Err(e) => return Err(format!("not an HTTP/1.x response ({e})")),
        }
        // What would make the client and this proxy disagree on where the
        // answer ends is refused as in a request (`unsafe_head`), and so is
        // a switch of protocols nobody asked for: the connection ends.
        if let Some(why) = unsafe_head(head) {
            return Err(format!("a response with {why}"));
        }
        let code = response.code.unwrap_or_default();
        if code == 101 && !self.upgrade {
            return Err("a 101 Switching Protocols to a request that asked for no upgrade".into());
        }
        if (100..200).contains(&code) && code != 101 {
            return Ok(None);
        }
        self.status = Some(code);
        let options = connection_options(response.headers);
        if let Some(named) = names_framing(&options) {
            return Err(format!("a response whose Connection names {named}: a header its framing or routing is read from would be dropped as hop-by-hop"));
        }
        self.close = closes(&options, response.version.unwrap_or(1));
        let body = if self.to_head || code == 204 || code == 304 {
            Body::Empty
        } else if code == 101 {
            Body::UntilClose // the connection is the upgraded protocol's now
        } else {
            match declared(response.headers).map_err(|e| format!("a response with {e}"))? {
                Declared::Length(n) => Body::Length(n),
                Declared::Chunked => Body::Chunked,
                Declared::Nothing | Declared::OtherCoding => Body::UntilClose,
            }
        };
        self.close |= body == Body::UntilClose;
        Ok(Some(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_of_a_response_is_told_apart_from_its_chunked_framing() {
        let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n3;x=y\r\nfgh\r\n0\r\nT: v\r\n\r\n";
        for step in 1..answer.len() {
            let mut r = ResponseReader::new(false);
            let mut seen = Vec::new();
            for piece in answer.chunks(step) {
                r.feed_marking(piece, &mut |range| seen.extend_from_slice(&piece[range])).unwrap();
            }
            assert!(r.done());
            assert_eq!(seen, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nabcdefgh", "pieces of {step}");
        }
    }

    /// Feed `bytes` in pieces of `step`: the bytes used in all.
    fn feed_in(r: &mut BodyReader, bytes: &[u8], step: usize) -> Result<usize, String> {
        let mut used = 0;
        for piece in bytes.chunks(step) {
            let n = r.feed(piece)?;
            used += n;
            if n < piece.len() {
                break;
            }
        }
        Ok(used)
    }

    #[test]
    fn a_length_ends_where_it_says_whatever_the_pieces() {
        for step in [1, 3, 1000] {
            let mut r = BodyReader::new(Body::Length(5));
            assert_eq!(feed_in(&mut r, b"helloGET / HTTP/1.1", step), Ok(5));
            assert!(r.done());
        }
        assert!(BodyReader::new(Body::Empty).done() && BodyReader::new(Body::Length(0)).done());
        assert_eq!(BodyReader::new(Body::Empty).feed(b"next"), Ok(0));
    }

    #[test]
    fn a_chunked_body_ends_after_its_last_chunk_and_trailers() {
        let body = b"5;name=v\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Sum: 1\r\n\r\n";
        for step in [1, 2, 7, 1000] {
            let mut r = BodyReader::new(Body::Chunked);
            let mut stream = body.to_vec();
            stream.extend_from_slice(b"GET /next HTTP/1.1\r\n");
            assert_eq!(feed_in(&mut r, &stream, step), Ok(body.len()), "in pieces of {step}");
            assert!(r.done());
        }
        let mut r = BodyReader::new(Body::Chunked);
        assert_eq!(r.feed(b"0\r\n\r\n"), Ok(5));
        assert!(r.done());
    }

    #[test]
    fn a_chunked_body_that_is_not_well_formed_is_an_error() {
        for (bytes, want) in [
            (&b"x\r\n"[..], "not hex"),
            (b"\r\n", "not hex"),
            (b"5\nhello", "bare LF"),
            (b"5\rhello", "CRLF"),
            (b"2\r\nhello\r\n", "longer than its size"),
            (b"1000000000000000\r\n", "over 15 hex digits"),
            (b"0\r\nX: 1\n", "bare LF"),
            (b"0\r\n\r\r", "CRLF"),
            (b"0\r\nX:\r\nGET /smuggled HTTP/1.1\r\nHost: evil.test\r\n\r\n", "not a field"),
            (b"0\r\n folded: x\r\n\r\n", "not a field"),
            (b"0\r\n: x\r\n\r\n", "not a field"),
            (b"0\r\nX\r\n\r\n", "not a field"),
        ] {
            let err = BodyReader::new(Body::Chunked).feed(bytes).unwrap_err();
            assert!(err.contains(want), "{}: {err}", String::from_utf8_lossy(bytes));
        }
    }

    fn response(to_head: bool, bytes: &[u8]) -> (ResponseReader, Result<usize, String>) {
        let mut r = ResponseReader::new(to_head);
        let used = r.feed(bytes);
        (r, used)
    }

    #[test]
    fn a_response_ends_by_its_framing() {
        let cl = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        let (r, used) = response(false, &[&cl[..], b"extra"].concat());
        assert_eq!((used, r.done(), r.close, r.status), (Ok(cl.len()), true, false, Some(200)));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        let (r, used) = response(false, chunked);
        assert_eq!((used, r.done()), (Ok(chunked.len()), true));
        // No body: HEAD, 204, 304, whatever the length says.
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";
        assert_eq!(response(true, head).1, Ok(head.len()));
        for status in ["204 No Content", "304 Not Modified"] {
            let bytes = format!("HTTP/1.1 {status}\r\nContent-Length: 9\r\n\r\n");
            let (r, used) = response(false, bytes.as_bytes());
            assert_eq!((used, r.done()), (Ok(bytes.len()), true), "{status}");
        }
        // Interim responses come first, then the real one.
        let both = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
        let (r, used) = response(false, both);
        assert_eq!((used, r.done(), r.status), (Ok(both.len()), true, Some(201)));
        let (r, _) = response(false, b"HTTP/1.1 100 Continue\r\n\r\n");
        assert!(!r.done(), "after a 100 the answer is still to come");
        // Without a length: until the close, and the connection ends.
        let until_close = b"HTTP/1.1 200 OK\r\n\r\nall of it";
        let (r, used) = response(false, until_close);
        assert_eq!((used, r.done(), r.close), (Ok(until_close.len()), false, true));
        let (r, _) = response(false, b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 0\r\n\r\n");
        assert!(r.done() && r.close);
        let (r, _) = response(false, b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(r.close, "HTTP/1.0 closes unless it says keep-alive");
    }

    #[test]
    fn a_head_split_anywhere_is_found() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcNEXT";
        for step in 1..bytes.len() {
            let mut r = ResponseReader::new(false);
            let mut used = 0;
            for piece in bytes.chunks(step) {
                let n = r.feed(piece).unwrap();
                used += n;
                if n < piece.len() {
                    break;
                }
            }
            assert_eq!((used, r.done()), (bytes.len() - 4, true), "in pieces of {step}");
        }
    }

    #[test]
    fn ambiguous_responses_are_errors() {
        for (bytes, want) in [
            (&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"[..], "both"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", "differ"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n", "not a number"),
            (b"SSH-2.0-x\r\n\r\n", "not an HTTP/1.x response"),
        ] {
            let err = response(false, bytes).1.unwrap_err();
            assert!(err.contains(want), "{}: {err}", String::from_utf8_lossy(bytes));
        }
        // A response plays the request's tricks: the connection ends.
        for (bytes, want) in [
            (&b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 2\r\n\r\n"[..], "names content-length"),
            (b"HTTP/1.1 200 OK\r\nconnection: close, Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n", "names transfer-encoding"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", "twice"),
            (b"HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\n", "bare LF"),
            (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", "asked for no upgrade"),
        ] {
            let err = response(false, bytes).1.unwrap_err();
            assert!(err.contains(want), "{}: {err}", String::from_utf8_lossy(bytes));
        }
        let mut ws = ResponseReader::new(false).with_upgrade(true);
        assert!(ws.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n").is_ok() && ws.status == Some(101));
        let mut big = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        assert!(response(false, &big).1.unwrap_err().contains("over"));
    }
}
