//! `wasiter ask list` and `wasiter ask answer ID ANSWER`, with `--admin
//! ADDR` and `--admin-token FILE` (or `WASITER_ADMIN`,
//! `WASITER_ADMIN_TOKEN`): read into a `crate::ask::client::Ask`. Bad usage
//! is one line and exit 2, as for every other setting.

use std::ffi::OsString;

use super::table::{ADMIN, ADMIN_TOKEN};
use super::{parse_addr, Command, ConfigError, Sources};
use crate::ask::client::{Ask, Call};
use crate::ask::Scope;

/// How it is used, for its errors.
pub const USAGE: &str = "wasiter ask list | wasiter ask answer ID once|session|forever|deny|deny-forever [--admin ADDR] [--admin-token FILE]";

/// The words after `ask`.
pub(super) fn parse(args: &[OsString], env: impl Fn(&str) -> Option<String>) -> Result<Command, ConfigError> {
    use lexopt::prelude::*;

    let usage = |why: String| ConfigError(format!("ask: {why}; usage: {USAGE}"));
    let mut parser = lexopt::Parser::from_args(args.iter().cloned());
    let (mut flags, mut words): (Vec<(&'static str, String)>, Vec<String>) = (Vec::new(), Vec::new());
    loop {
        let arg = match parser.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            Err(e) => return Err(usage(e.to_string())),
        };
        let setting = match arg {
            Long("admin") => &ADMIN,
            Long("admin-token") => &ADMIN_TOKEN,
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
        ["answer", id, answer] => Call::Answer {
            id: id.parse().map_err(|_| usage(format!("{id:?} is not a question's number")))?,
            scope: Scope::parse(answer).ok_or_else(|| usage(format!("{answer:?} is not an answer")))?,
        },
        _ => return Err(usage(format!("{:?} is not a request", words.join(" ")))),
    };
    let src = Sources { flags, env };
    let admin = ADMIN.parse(&src, None, parse_addr)?.ok_or_else(|| usage(format!("the proxy's admin address is needed: give --admin ADDR or {}", ADMIN.env)))?;
    let token_file = ADMIN_TOKEN.pick(&src).map(|g| g.value.trim().to_string()).filter(|f| !f.is_empty());
    let token_file = token_file.ok_or_else(|| usage(format!("the token file is needed: give --admin-token FILE or {}", ADMIN_TOKEN.env)))?;
    Ok(Command::Ask(Ask { call, admin, token_file }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Command, ConfigError> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        super::super::parse(args.iter().map(OsString::from), move |k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn ask_list_and_answer_read_their_words_flags_and_variables() {
        let Ok(Command::Ask(a)) = run(&["ask", "list", "--admin", "9091", "--admin-token", "/t"], &[]) else { panic!() };
        assert_eq!(a, Ask { call: Call::List, admin: "127.0.0.1:9091".parse().unwrap(), token_file: "/t".into() });
        let env = [("WASITER_ADMIN", "http://127.0.0.1:9092/"), ("WASITER_ADMIN_TOKEN", "/tok")];
        let Ok(Command::Ask(a)) = run(&["ask", "answer", "7", "deny-forever"], &env) else { panic!() };
        assert_eq!(a, Ask { call: Call::Answer { id: 7, scope: Scope::DenyForever }, admin: "127.0.0.1:9092".parse().unwrap(), token_file: "/tok".into() });
        for (args, says) in [
            (&["ask"][..], "is not a request"),
            (&["ask", "answer", "x", "once"], "\"x\" is not a question's number"),
            (&["ask", "answer", "1", "always"], "\"always\" is not an answer"),
            (&["ask", "answer", "1", "timeout"], "is not an answer"),
            (&["ask", "list", "--bogus"], "--bogus"),
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
