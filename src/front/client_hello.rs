//! The TLS ClientHello, as far as routing needs it: the server name the
//! client asked for (SNI) and the protocols it offers (ALPN).
//!
//! The record layer is reassembled here; `tls-parser` reads the message.
//! A ClientHello may be split over several TLS records (and each record
//! over several TCP segments), so `parse` is given everything read so far
//! and answers "not yet" until the whole message is in. Nothing is
//! decrypted or changed: the bytes go to the upstream as they came.

use tls_parser::{parse_tls_message_handshake, TlsMessage, TlsMessageHandshake};

use super::failure::Failure;

/// The largest ClientHello taken (its 4-byte handshake header included).
/// Today's are 200 B to 2 KiB (post-quantum key shares included); 16 KiB is
/// what one TLS record can carry.
pub const MAX_HELLO: usize = 16 * 1024;

/// A TLS record's header: type, version (2 bytes), length (2 bytes).
const RECORD_HEADER: usize = 5;
/// The record type of a handshake, and the handshake type of a ClientHello.
const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
/// The most a plaintext record may carry (RFC 8446, 5.1).
const MAX_RECORD: usize = 1 << 14;

/// What a ClientHello asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hello {
    /// The host name in the server_name extension, as sent.
    pub server_name: Option<String>,
    /// The ALPN protocol names, in the client's order of preference.
    pub alpn: Vec<String>,
}

/// TLS alert descriptions this proxy sends.
pub const UNRECOGNIZED_NAME: u8 = 112;
pub const HANDSHAKE_FAILURE: u8 = 40;
pub const DECODE_ERROR: u8 = 50;

/// A fatal alert record with this description, in the record version of the
/// client's first record (`read`, what it sent so far): what a client is
/// told when its ClientHello is refused before any server saw it.
pub fn fatal_alert(read: &[u8], description: u8) -> Vec<u8> {
    let (major, minor) = (read.get(1).copied().unwrap_or(3), read.get(2).copied().unwrap_or(1));
    vec![21, major, minor, 0, 2, 2, description]
}

/// Does `first` start a TLS handshake record? (How a port that takes both
/// TLS and plain HTTP tells them apart: no HTTP method starts with 0x16.)
pub fn looks_like_tls(first: u8) -> bool {
    first == HANDSHAKE
}

/// `Ok(None)`: the ClientHello is not complete yet. `Ok(Some)`: it is, and
/// this is what it asks for. `Err`: not a ClientHello, or too large.
pub fn parse(buf: &[u8]) -> Result<Option<Hello>, Failure> {
    let message = match reassemble(buf)? {
        Some(m) => m,
        None => return Ok(None),
    };
    let bad = |why: &str| Failure::BadClientHello(why.to_string());
    match parse_tls_message_handshake(&message) {
        Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(_)))) => {}
        Ok(_) => return Err(bad("a handshake message that is not a ClientHello")),
        Err(_) => return Err(bad("a malformed ClientHello")),
    }
    // The extensions walked here, strictly, not by tls-parser (which stops
    // quietly at the first it cannot read, and keeps the last of two).
    let block = extension_block(&message).ok_or_else(|| bad("a malformed ClientHello"))?;
    read_extensions(block).map(Some).map_err(Failure::BadClientHello)
}

/// The ClientHello's extensions (without their length), `Some(&[])` for
/// none; `None` if the body does not end where its extensions do.
fn extension_block(message: &[u8]) -> Option<&[u8]> {
    let body = message.get(4..)?;
    let at = 2 + 32; // version, random
    let at = at + 1 + usize::from(*body.get(at)?); // session id
    let at = at + 2 + usize::from(u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?])); // cipher suites
    let at = at + 1 + usize::from(*body.get(at)?); // compression methods
    let rest = body.get(at..)?;
    match rest {
        [] => Some(rest),
        [hi, lo, block @ ..] if usize::from(u16::from_be_bytes([*hi, *lo])) == block.len() => Some(block),
        _ => None,
    }
}

/// The server name and ALPN list of an extension block. Refused: two
/// extensions of one type (RFC 8446 section 4.2, RFC 5246 section 7.4.1.4:
/// servers differ on which one they act on), a server_name list that is
/// not exactly one `host_name` (RFC 6066 section 3 allows one name per
/// type, and only that type exists; OpenSSL reads the first, others the
/// last), and any extension whose length does not add up.
fn read_extensions(mut block: &[u8]) -> Result<Hello, String> {
    let mut out = Hello::default();
    let mut seen: Vec<u16> = Vec::new();
    while !block.is_empty() {
        let [t0, t1, l0, l1, rest @ ..] = block else { return Err("a truncated extension header".into()) };
        let (kind, len) = (u16::from_be_bytes([*t0, *t1]), usize::from(u16::from_be_bytes([*l0, *l1])));
        let (Some(data), Some(after)) = (rest.get(..len), rest.get(len..)) else { return Err(format!("extension {kind} runs past the ClientHello")) };
        if seen.contains(&kind) {
            return Err(format!("two {} extensions (RFC 8446 section 4.2 allows one of each type)", extension_name(kind)));
        }
        seen.push(kind);
        match kind {
            SERVER_NAME => out.server_name = Some(server_name(data)?),
            ALPN => out.alpn = alpn(data)?,
            _ => {}
        }
        block = after;
    }
    Ok(out)
}

const SERVER_NAME: u16 = 0;
const ALPN: u16 = 16;

fn extension_name(kind: u16) -> String {
    match kind {
        SERVER_NAME => "server_name".into(),
        ALPN => "ALPN".into(),
        other => format!("type-{other}"),
    }
}

/// A server_name extension's one host name: as sent, printable ASCII.
fn server_name(data: &[u8]) -> Result<String, String> {
    let [l0, l1, list @ ..] = data else { return Err("a server_name extension without its list".into()) };
    if usize::from(u16::from_be_bytes([*l0, *l1])) != list.len() {
        return Err("a server_name list whose length does not add up".into());
    }
    let [kind, n0, n1, rest @ ..] = list else { return Err("an empty server_name list".into()) };
    let len = usize::from(u16::from_be_bytes([*n0, *n1]));
    let (Some(name), Some(after)) = (rest.get(..len), rest.get(len..)) else { return Err("a server name that runs past its list".into()) };
    if *kind != 0 {
        return Err(format!("a server name of type {kind} (host_name, 0, is the only one)"));
    }
    if !after.is_empty() {
        return Err("a server_name list of more than one name (RFC 6066 allows one host_name)".into());
    }
    let name = std::str::from_utf8(name).map_err(|_| "a server name that is not text".to_string())?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a server name with spaces or control bytes".into());
    }
    Ok(name.to_string())
}

/// The ALPN protocol names, in the client's order (opaque bytes; the
/// registered ones are ASCII).
fn alpn(data: &[u8]) -> Result<Vec<String>, String> {
    let [l0, l1, list @ ..] = data else { return Err("an ALPN extension without its list".into()) };
    let mut list: &[u8] = list;
    if usize::from(u16::from_be_bytes([*l0, *l1])) != list.len() {
        return Err("an ALPN list whose length does not add up".into());
    }
    let mut out = Vec::new();
    while let [len, rest @ ..] = list {
        let Some(p) = rest.get(..usize::from(*len)).filter(|p| !p.is_empty()) else { return Err("an ALPN protocol name that is empty or runs past its list".into()) };
        out.push(String::from_utf8_lossy(p).into_owned());
        list = rest.get(usize::from(*len)..).unwrap_or_default();
    }
    Ok(out)
}

/// The handshake message carried by the records in `buf`, once complete.
/// Fails as soon as the bytes cannot be a ClientHello, or its header
/// announces one over `MAX_HELLO`, without waiting for the rest.
fn reassemble(buf: &[u8]) -> Result<Option<Vec<u8>>, Failure> {
    let mut message = Vec::new();
    let mut rest = buf;
    loop {
        if let Some(len) = message_len(&message)? {
            if message.len() >= len {
                message.truncate(len);
                return Ok(Some(message));
            }
        }
        let &[kind, major, minor, hi, lo, ..] = rest else { return Ok(None) };
        let len = u16::from_be_bytes([hi, lo]) as usize;
        if kind != HANDSHAKE {
            return Err(Failure::BadClientHello(format!("a TLS record of type {kind}, not a handshake (22)")));
        }
        if major != 3 {
            return Err(Failure::BadClientHello(format!("record version {major}.{minor}, not 3.x")));
        }
        if len == 0 || len > MAX_RECORD {
            return Err(Failure::BadClientHello(format!("a record of {len} bytes (1 to {MAX_RECORD})")));
        }
        let body = rest.get(RECORD_HEADER..).unwrap_or_default();
        match (body.get(..len), body.get(len..)) {
            (Some(whole), Some(after)) => {
                message.extend_from_slice(whole);
                rest = after;
            }
            _ => {
                // A partial record: its start may already show the message header.
                message.extend_from_slice(body);
                message_len(&message)?;
                return Ok(None);
            }
        }
    }
}

/// The whole message's length (header included), once its 4-byte header is
/// in. Fails if that header is not a ClientHello's or announces too much.
fn message_len(message: &[u8]) -> Result<Option<usize>, Failure> {
    let &[kind, a, b, c, ..] = message else { return Ok(None) };
    let len = 4 + u32::from_be_bytes([0, a, b, c]) as usize;
    if kind != CLIENT_HELLO {
        return Err(Failure::BadClientHello(format!("a handshake message of type {kind}, not a ClientHello (1)")));
    }
    if len > MAX_HELLO {
        return Err(Failure::TooLarge(format!("a ClientHello of {len} bytes (at most {MAX_HELLO})")));
    }
    Ok(Some(len))
}

/// A ClientHello as a TLS 1.3 client sends one (a TLS 1.2 body), naming
/// `sni`, offering `alpn`, grown by `padding` bytes of padding extension: one
/// handshake message, no record header. For tests (here and black-box) that
/// need to split one any way they like. Names and lists longer than a
/// ClientHello can carry are cut short.
pub fn sample(sni: Option<&str>, alpn: &[&str], padding: usize) -> Vec<u8> {
    let mut ext = Vec::new();
    if let Some(name) = sni {
        let n = name.len() as u16;
        ext.extend_from_slice(&[0, 0]); // server_name
        ext.extend_from_slice(&(n + 5).to_be_bytes());
        ext.extend_from_slice(&(n + 3).to_be_bytes());
        ext.push(0); // host_name
        ext.extend_from_slice(&n.to_be_bytes());
        ext.extend_from_slice(name.as_bytes());
    }
    if !alpn.is_empty() {
        let list: Vec<u8> = alpn.iter().flat_map(|p| std::iter::once(p.len() as u8).chain(p.bytes())).collect();
        ext.extend_from_slice(&[0, 16]);
        ext.extend_from_slice(&(list.len() as u16 + 2).to_be_bytes());
        ext.extend_from_slice(&(list.len() as u16).to_be_bytes());
        ext.extend_from_slice(&list);
    }
    if padding > 0 {
        ext.extend_from_slice(&[0, 21]); // padding
        ext.extend_from_slice(&(padding as u16).to_be_bytes());
        ext.extend(std::iter::repeat_n(0, padding));
    }
    with_extensions(&ext)
}

/// A server_name extension as written, one entry per name (host_name
/// type): for tests that send odd ones (two names, two extensions).
pub fn server_name_extension(names: &[&[u8]]) -> Vec<u8> {
    let list: Vec<u8> = names.iter().flat_map(|n| [&[0u8][..], &(n.len() as u16).to_be_bytes(), n].concat()).collect();
    [&[0u8, 0][..], &(list.len() as u16 + 2).to_be_bytes(), &(list.len() as u16).to_be_bytes(), &list].concat()
}

/// A ClientHello message around this extension block, as written (for
/// tests: any extensions, duplicates and all).
pub fn with_extensions(ext: &[u8]) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(ext);
    let [_, a, b, c] = (body.len() as u32).to_be_bytes();
    let mut msg = vec![CLIENT_HELLO, a, b, c];
    msg.extend_from_slice(&body);
    msg
}

/// `message` in TLS handshake records of at most `per_record` bytes each.
pub fn in_records(message: &[u8], per_record: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in message.chunks(per_record) {
        out.extend_from_slice(&[HANDSHAKE, 3, 1]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_and_protocols_are_read() {
        let bytes = in_records(&sample(Some("App.Test"), &["h2", "http/1.1"], 0), 1 << 14);
        let hello = parse(&bytes).unwrap().unwrap();
        assert_eq!(hello.server_name.as_deref(), Some("App.Test"), "as sent; matching normalizes");
        assert_eq!(hello.alpn, ["h2", "http/1.1"]);
        let bare = parse(&in_records(&sample(None, &[], 0), 1 << 14)).unwrap().unwrap();
        assert_eq!(bare, Hello::default());
    }

    #[test]
    fn every_prefix_is_incomplete_and_records_are_reassembled() {
        let message = sample(Some("a.test"), &["h2"], 300);
        for per_record in [1, 7, 100, 1 << 14] {
            let bytes = in_records(&message, per_record);
            for cut in 0..bytes.len() {
                assert_eq!(parse(&bytes[..cut]), Ok(None), "{per_record}-byte records cut at {cut}");
            }
            assert_eq!(parse(&bytes).unwrap().unwrap().server_name.as_deref(), Some("a.test"));
        }
    }

    #[test]
    fn what_is_not_a_client_hello_fails_early() {
        let bad = |bytes: &[u8]| match parse(bytes) {
            Err(Failure::BadClientHello(why)) => why,
            other => panic!("{bytes:?}: {other:?}"),
        };
        assert!(bad(b"\x17\x03\x03\x00\x05hello").contains("type 23"));
        assert!(bad(b"\x16\x02\x00\x00\x05").contains("version 2.0"));
        assert!(bad(b"\x16\x03\x01\x00\x00").contains("0 bytes"));
        assert!(bad(b"\x16\x03\x01\x00\x05\x02\x00\x00\x01").contains("type 2"), "a ServerHello, seen before it ends");
        let mut truncated_body = in_records(&sample(Some("a.test"), &[], 0), 1 << 14);
        truncated_body[8] = 10; // the message says 10 bytes: too short for a ClientHello
        truncated_body.truncate(5 + 4 + 10);
        truncated_body[3..5].copy_from_slice(&14u16.to_be_bytes());
        assert!(bad(&truncated_body).contains("malformed"));
    }

    #[test]
    fn two_names_or_two_of_any_extension_are_refused() {
        let bad = |ext: &[u8]| match parse(&in_records(&with_extensions(ext), 1 << 14)) {
            Err(Failure::BadClientHello(why)) => why,
            other => panic!("{other:?}"),
        };
        let sni = |n: &[u8]| server_name_extension(&[n]);
        let allowed = sni(b"allowed.test");
        assert_eq!(parse(&in_records(&with_extensions(&allowed), 1 << 14)).unwrap().unwrap().server_name.as_deref(), Some("allowed.test"));
        assert!(bad(&[sni(b"allowed.test"), sni(b"other.test")].concat()).contains("two server_name extensions"));
        assert!(bad(&[sni(b"a.test"), sni(b"a.test")].concat()).contains("two server_name"), "even with one name twice");
        assert!(bad(&server_name_extension(&[b"allowed.test", b"other.test"])).contains("more than one name"));
        let alpn = [0u8, 16, 0, 5, 0, 3, 2, b'h', b'2'];
        assert!(bad(&[&alpn[..], &alpn].concat()).contains("two ALPN"));
        let grease = |t: u8| [t, t, 0, 0];
        assert!(bad(&[&allowed[..], &grease(0x1a), &grease(0x1a)].concat()).contains("two type-6682"), "any type");
        assert!(parse(&in_records(&with_extensions(&[&grease(0x1a)[..], &allowed, &grease(0x2a)].concat()), 1 << 14)).is_ok(), "two GREASE values");
        let other_type = [0u8, 0, 0, 9, 0, 7, 1, 0, 4, b'a', b'.', b't', b'e'];
        assert!(bad(&other_type).contains("type 1"));
        assert!(bad(&[0, 0, 0, 2, 0, 0]).contains("empty server_name list"));
        assert!(bad(&[&allowed[..], &[0, 21, 0, 9, 0]].concat()).contains("runs past"), "an extension longer than what is left");
        assert!(bad(&[&allowed[..], &[0]].concat()).contains("truncated extension header"));
        let mut wrong_list = allowed.clone();
        wrong_list[5] += 1; // the list's length says one byte more than the extension holds
        assert!(bad(&wrong_list).contains("does not add up"));
    }

    #[test]
    fn an_extensions_length_that_does_not_match_is_refused() {
        let mut message = sample(Some("a.test"), &[], 0);
        let at = message.len() - server_name_extension(&[b"a.test"]).len() - 2;
        message[at + 1] -= 1; // the block's length one short: one byte would be left over
        assert!(matches!(parse(&in_records(&message, 1 << 14)), Err(Failure::BadClientHello(_))));
    }

    #[test]
    fn an_oversized_hello_fails_as_soon_as_its_header_says_so() {
        let big = sample(Some("a.test"), &[], 20_000);
        let bytes = in_records(&big, 1 << 14);
        assert!(matches!(parse(&bytes[..9]), Err(Failure::TooLarge(_))), "known from the first 9 bytes");
        let fits = sample(Some("a.test"), &[], MAX_HELLO - 200);
        assert!(fits.len() <= MAX_HELLO);
        assert_eq!(parse(&in_records(&fits, 1 << 14)).unwrap().unwrap().server_name.as_deref(), Some("a.test"));
    }
}
