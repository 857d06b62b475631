//! `wasiter ask list` and `wasiter ask answer ID ANSWER`, with `--admin
//! ADDR` and `--admin-token FILE` (or `WASITER_ADMIN`,
//! `WASITER_ADMIN_TOKEN`): read into a `crate::ask::client::Ask`. Bad usage
//! is one line and exit 2, as for every other setting.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::table::{Setting, ADMIN, ADMIN_TOKEN};
use crate::ask::client::{Ask, Call};
use crate::ask::Scope;

/// How it is used, for its errors.
pub const USAGE: &str = "wasiter ask list [--json] | wasiter ask answer ID once|session|forever|deny|deny-forever [--admin ADDR] [--admin-token FILE]";

/// An HTTP listener's address (`--metrics`, `--admin`): `IP:PORT`, a bare
/// `PORT` (127.0.0.1:PORT), or `off`; `http://ADDR/`, as the start line
/// shows it, too.
pub(super) fn parse_addr(s: &str) -> Option<Option<SocketAddr>> {
    let s = s.strip_prefix("http://").map_or(s, |a| a.strip_suffix('/').unwrap_or(a));
    match s {
        "off" | "" => Some(None),
        _ => match s.parse::<u16>() {
            Ok(port) => Some(Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))),
            Err(_) => s.parse().ok().map(Some),
        },
    }
}

/// The words after `ask`: what to do, or the line that says why not (exit 2).
pub(super) fn parse(args: &[OsString], env: impl Fn(&str) -> Option<String>) -> Result<Ask, String> {
    use lexopt::prelude::*;

    let usage = |why: String| format!("ask: {why}; usage: {USAGE}");
    let mut parser = lexopt::Parser::from_args(args.iter().cloned());
    let (mut flags, mut words): (Vec<(&'static str, String)>, Vec<String>) = (Vec::new(), Vec::new());
    let mut json = false;
    loop {
        let arg = match parser.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            Err(e) => return Err(usage(e.to_string())),
        };
        let setting = match arg {
            Long("admin") => &ADMIN,
            Long("admin-token") => &ADMIN_TOKEN,
            Long("json") => {
                json = true;
                continue;
            }
            Value(word) => {
                words.push(word.to_string_lossy().into_owned());
                continue;
            }
            other => return Err(usage(other.unexpected().to_string())),
        };
        let value = parser.value().map_err(|_| usage(format!("{} needs a value: {}", setting.flag, setting.expected)))?;
        flags.push((setting.flag, value.to_string_lossy().into_owned()));
    }
    let call = match words.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["list"] => Call::List,
        ["answer", ..] if json => return Err(usage("--json goes with list".into())),
        ["answer", id, answer] => Call::Answer {
            id: id.parse().map_err(|_| usage(format!("{id:?} is not a question's number")))?,
            scope: Scope::parse(answer).ok_or_else(|| usage(format!("{answer:?} is not an answer")))?,
        },
        _ => return Err(usage(format!("{:?} is not a request", words.join(" ")))),
    };
    // The flag if given, else the variable: (value, the name it came by).
    let pick = |s: &Setting| flags.iter().rev().find(|(f, _)| *f == s.flag).map(|(_, v)| (v.trim().to_string(), s.flag)).or_else(|| env(s.env).map(|v| (v.trim().to_string(), s.env)));
    let admin = match pick(&ADMIN) {
        Some((given, name)) => parse_addr(&given).ok_or_else(|| format!("{name}: {given:?} is not valid; expected {}", ADMIN.expected))?,
        None => None,
    };
    let admin = admin.ok_or_else(|| usage(format!("the proxy's admin address is needed: give --admin ADDR or {}", ADMIN.env)))?;
    let token_file = pick(&ADMIN_TOKEN).map(|(file, _)| file).filter(|f| !f.is_empty());
    let token_file = token_file.ok_or_else(|| usage(format!("the token file is needed: give --admin-token FILE or {}", ADMIN_TOKEN.env)))?;
    Ok(Ask { call, admin, token_file, json })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Command, ConfigError};

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Command, ConfigError> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        super::super::parse(args.iter().map(OsString::from), move |k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn ask_list_and_answer_read_their_words_flags_and_variables() {
        let Ok(Command::Ask(a)) = run(&["ask", "list", "--admin", "9091", "--admin-token", "/t"], &[]) else { panic!() };
        assert_eq!(a, Ask { call: Call::List, admin: "127.0.0.1:9091".parse().unwrap(), token_file: "/t".into(), json: false });
        let Ok(Command::Ask(a)) = run(&["ask", "list", "--json", "--admin", "9091", "--admin-token", "/t"], &[]) else { panic!() };
        assert!(a.json);
        let env = [("WASITER_ADMIN", "http://127.0.0.1:9092/"), ("WASITER_ADMIN_TOKEN", "/tok")];
        let Ok(Command::Ask(a)) = run(&["ask", "answer", "7", "deny-forever"], &env) else { panic!() };
        assert_eq!(a, Ask { call: Call::Answer { id: 7, scope: Scope::DenyForever }, admin: "127.0.0.1:9092".parse().unwrap(), token_file: "/tok".into(), json: false });
        for (args, says) in [
            (&["ask"][..], "is not a request"),
            (&["ask", "answer", "x", "once"], "\"x\" is not a question's number"),
            (&["ask", "answer", "1", "always"], "\"always\" is not an answer"),
            (&["ask", "answer", "1", "timeout"], "is not an answer"),
            (&["ask", "list", "--bogus"], "--bogus"),
            (&["ask", "answer", "1", "once", "--json"], "--json goes with list"),
            (&["ask", "list", "--admin-token", "/t"], "admin address is needed"),
            (&["ask", "list", "--admin", "9091"], "token file is needed"),
            (&["ask", "list", "--admin", "nowhere", "--admin-token", "/t"], "--admin: \"nowhere\" is not valid"),
        ] {
            let err = run(args, &[]).unwrap_err().0;
            assert!(err.contains(says), "{args:?}: {err}");
        }
    }

    #[test]
    fn admin_needs_its_token_file() {
        let base = [("LOCAL", "127.0.0.1:0"), ("REMOTE", "127.0.0.1:1")];
        let Ok(Command::Run(c)) = run(&["--admin", "9091", "--admin-token", "/t"], &base) else { panic!() };
        assert_eq!(c.admin, Some(("127.0.0.1:9091".parse().unwrap(), "/t".to_string())));
        assert!(run(&["--admin", "9091"], &base).unwrap_err().0.contains("--admin needs --admin-token"));
        let Ok(Command::Run(c)) = run(&["--admin-token", "/t"], &base) else { panic!() };
        assert_eq!(c.admin, None, "a token file alone (the CLI's variable) turns nothing on");
    }
}
