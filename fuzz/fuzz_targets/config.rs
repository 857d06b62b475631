//! Settings from arbitrary flags and environment: one line each, lines with
//! a leading '-' are flags, `KEY=VALUE` lines are the environment, anything
//! else is a stray argument. `cli::parse` must answer, never panic, and
//! every rejection must be one line.
#![no_main]

use std::collections::HashMap;
use std::ffi::OsString;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut args: Vec<OsString> = Vec::new();
    let mut env: HashMap<String, String> = HashMap::new();
    for line in text.split('\n') {
        match line.split_once('=') {
            Some((k, v)) if !line.starts_with('-') => {
                env.insert(k.to_string(), v.to_string());
            }
            _ => args.push(line.into()),
        }
    }
    if let Err(e) = wasiter::cli::parse(args, |k| env.get(k).cloned()) {
        assert!(!e.0.contains('\n'), "a rejection is one line: {:?}", e.0);
    }
});
