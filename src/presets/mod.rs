//! Presets: known-good lists per ecosystem, so that "let it install Python
//! packages" is `to=@python` and not a day of finding out that pip also
//! needs `files.pythonhosted.org`.
//!
//! The lists live in one data file, `presets.txt` beside this one, with the
//! ecosystem's own documentation for each name (so a reviewer can check
//! it); they are built into the binary. A route's `to=@NAME` (and
//! `not-to=@NAME`) expands to the preset's names where the route is read
//! (`crate::route`), so the policy never sees a preset: only names.
//! `wasiter presets` prints them; report and ask mode's drafts group the
//! names they saw under the presets that cover them (`crate::ledger`).

use std::fmt::Write as _;
use std::sync::OnceLock;

use crate::names::Pattern;

/// The data file, as built in.
pub const DATA: &str = include_str!("presets.txt");

/// One name of a preset: the pattern, the ports its tools use, and the
/// documentation that names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub pattern: Pattern,
    pub ports: Vec<u16>,
    pub source: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preset {
    /// Without the `@`.
    pub name: String,
    pub about: String,
    pub entries: Vec<Entry>,
}

impl Preset {
    /// The preset's names as `to=` patterns.
    pub fn patterns(&self) -> impl Iterator<Item = &Pattern> {
        self.entries.iter().map(|e| &e.pattern)
    }

    /// Does one of its names cover `host`?
    pub fn covers(&self, host: &str) -> bool {
        self.patterns().any(|p| p.matches(host))
    }
}

/// Every preset, in the data file's order.
pub fn all() -> &'static [Preset] {
    static ALL: OnceLock<Vec<Preset>> = OnceLock::new();
    // The file is built in and checked by a test: a line it cannot read is
    // a bug caught there, never a start that fails.
    ALL.get_or_init(|| parse(DATA).unwrap_or_default())
}

/// The preset `@name` (with or without its `@`).
pub fn get(name: &str) -> Option<&'static Preset> {
    let name = name.strip_prefix('@').unwrap_or(name);
    all().iter().find(|p| p.name == name)
}

/// `to=` items that name presets (`@python`) replaced by their patterns;
/// `Err` names an unknown preset and the ones there are.
pub fn expand(item: &str) -> Result<Vec<Pattern>, String> {
    match get(item) {
        Some(p) => Ok(p.patterns().cloned().collect()),
        None => Err(format!("unknown preset {item:?} (presets: {}; `wasiter presets` shows what each holds)", names().join(" "))),
    }
}

/// `@python @node ...`
pub fn names() -> Vec<String> {
    all().iter().map(|p| format!("@{}", p.name)).collect()
}

/// The data file's text read: a preset starts at `@NAME about...`, and
/// each line after it until the next is `HOST[:PORT,...] SOURCE`.
pub fn parse(text: &str) -> Result<Vec<Preset>, String> {
    let mut presets: Vec<Preset> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |why: String| format!("presets.txt, line {}: {why}", n + 1);
        let (first, rest) = line.split_once(char::is_whitespace).map_or((line, ""), |(a, b)| (a, b.trim()));
        if let Some(name) = first.strip_prefix('@') {
            let plain = !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !plain || rest.is_empty() || presets.iter().any(|p| p.name == name) {
                return Err(at(format!("{first:?}: a preset is @NAME (a-z, 0-9, -), new, with a line about it")));
            }
            presets.push(Preset { name: name.to_string(), about: rest.to_string(), entries: Vec::new() });
            continue;
        }
        let Some(preset) = presets.last_mut() else { return Err(at("a name before any @NAME".into())) };
        if !rest.starts_with("https://") || rest.contains(char::is_whitespace) {
            return Err(at(format!("{first}: the source is one https:// address")));
        }
        let (host, ports) = match first.split_once(':') {
            Some((host, ports)) => (host, ports.split(',').map(|p| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| at(format!("bad port {p:?}")))).collect::<Result<Vec<_>, _>>()?),
            None => (first, vec![443]),
        };
        let pattern = Pattern::parse(host).map_err(at)?;
        if matches!(pattern, Pattern::Any) {
            return Err(at("a preset never holds *".into()));
        }
        preset.entries.push(Entry { pattern, ports, source: rest.to_string() });
    }
    if let Some(empty) = presets.iter().find(|p| p.entries.is_empty()) {
        return Err(format!("presets.txt: @{} holds no name", empty.name));
    }
    Ok(presets)
}

/// What `wasiter presets` prints: every preset (or the one named), its
/// names with their ports, and where each is documented.
pub fn describe(only: Option<&str>) -> Result<String, String> {
    let chosen: Vec<&Preset> = match only {
        Some(name) => vec![get(name).ok_or_else(|| expand(name).err().unwrap_or_default())?],
        None => all().iter().collect(),
    };
    let mut out = String::new();
    for p in chosen {
        let _ = writeln!(out, "@{}  {}", p.name, p.about);
        for e in &p.entries {
            let ports = e.ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
            let _ = writeln!(out, "    {:<40} {}", format!("{}:{ports}", e.pattern), e.source);
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
