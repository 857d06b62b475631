//! What a forward route's clients asked for and what its policy decided:
//! requests by host, decisions by rule, and in report mode the names that
//! were let through, which it drafts into an allowlist ready to paste into a
//! routes file (on stop, in the log; at any time, at the metrics port's
//! `/allowlist`). Every count is bounded: the first hosts by name, the rest
//! together, whatever clients ask.

use std::fmt::Write as _;

use crate::forward::{Decision, Forward, Rule};

/// Hosts counted by name (the metrics' label values stay bounded).
pub const MAX_DESTINATIONS: usize = 64;
/// Names a draft holds; more are counted as a number.
pub const MAX_DRAFT: usize = 256;

/// A forward route's ledger.
#[derive(Default)]
pub struct Destinations {
    hosts: Vec<(String, u64)>,
    other: u64,
    /// Decisions, by `Decision as usize` then `Rule as usize`.
    decisions: [[u64; Rule::ALL.len()]; Decision::ALL.len()],
    /// Names let through (allowed or would-deny), with counts, and whether
    /// the list named them: the draft's material.
    passed: Vec<(String, u64, Decision, Option<&'static str>)>,
    passed_other: u64,
}

impl Destinations {
    /// A client asked for `asked` (`host:port`), before any decision.
    pub fn count(&mut self, asked: &str) {
        let host = name_of(asked);
        if let Some((_, n)) = self.hosts.iter_mut().find(|(h, _)| h == host) {
            *n += 1;
        } else if self.hosts.len() < MAX_DESTINATIONS {
            self.hosts.push((host.to_string(), 1));
        } else {
            self.other += 1;
        }
    }

    /// The policy decided for `asked` (`host:port`). `true`: a name the
    /// draft did not hold yet (the draft changed).
    pub fn decided(&mut self, asked: &str, decision: Decision, rule: Rule) -> bool {
        self.decided_how(asked, decision, rule, None)
    }

    /// The same, for a name a person allowed, with the scope of the answer
    /// (`how`: once, session, forever), which the draft shows.
    pub fn decided_how(&mut self, asked: &str, decision: Decision, rule: Rule, how: Option<&'static str>) -> bool {
        let host = name_of(asked);
        if let Some(n) = self.decisions.get_mut(decision as usize).and_then(|row| row.get_mut(rule as usize)) {
            *n += 1;
        }
        if decision == Decision::Deny {
            return false;
        }
        if let Some((_, n, _, was)) = self.passed.iter_mut().find(|(h, _, _, _)| h == host) {
            *n += 1;
            *was = how.or(*was);
        } else if self.passed.len() < MAX_DRAFT {
            self.passed.push((host.to_string(), 1, decision, how));
            return true;
        } else {
            self.passed_other += 1;
        }
        false
    }

    /// The names let through, in order of name.
    fn passed_by_name(&self) -> Vec<&(String, u64, Decision, Option<&'static str>)> {
        let mut names: Vec<&(String, u64, Decision, Option<&'static str>)> = self.passed.iter().collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        names
    }

    /// Requests by the host they named, the rest as `other`.
    pub fn hosts(&self) -> impl Iterator<Item = (&str, u64)> {
        self.hosts.iter().map(|(h, n)| (h.as_str(), *n)).chain(std::iter::once(("other", self.other)))
    }

    /// Decisions by decision and rule: every combination that can happen.
    pub fn decisions(&self) -> impl Iterator<Item = (Decision, Rule, u64)> + '_ {
        Decision::ALL.into_iter().zip(self.decisions).flat_map(|(decision, row)| {
            Rule::ALL.into_iter().zip(row).filter(move |(rule, _)| match decision {
                Decision::Allow => matches!(rule, Rule::Listed | Rule::Asked),
                Decision::WouldDeny => *rule == Rule::NotListed,
                Decision::Deny => !matches!(rule, Rule::Listed | Rule::Asked),
                Decision::Ask => false, // never final: the answer replaces it
            }).map(move |(rule, n)| (decision, rule, n))
        })
    }

    /// The names let through so far with their counts, on one line
    /// (`pypi.org=2 files.pythonhosted.org=1(would-deny)`), for the log.
    pub fn counts(&self) -> String {
        let each = self.passed_by_name().into_iter().map(|(h, n, d, how)| match (d, how) {
            (_, Some(how)) => format!("{h}={n}(asked: {how})"),
            (Decision::Allow, None) => format!("{h}={n}"),
            _ => format!("{h}={n}(would-deny)"),
        });
        each.collect::<Vec<_>>().join(" ")
    }

    /// The allowlist the names let through so far would make, for the route
    /// on `listen`: (the routes-file line, the whole text with counts).
    pub fn draft(&self, listen: &str, forward: &Forward) -> (String, String) {
        let names = self.passed_by_name();
        let hosts: Vec<&str> = names.iter().map(|(h, _, _, _)| h.as_str()).collect();
        let (groups, rest) = by_preset(&hosts);
        let to = groups.iter().map(|(p, _)| format!("@{}", p.name)).chain(rest.iter().map(|h| h.to_string())).collect::<Vec<_>>().join(",");
        let mut line = format!("{listen}=forward;to={}", if to.is_empty() { "none.invalid" } else { &to });
        let join = |v: Vec<String>| v.join(",");
        // Whose policy it is: the same clients get the drafted one.
        let id = &forward.identity;
        if let Some(name) = &id.name {
            let _ = write!(line, ";client={name}");
        }
        if !id.from.is_empty() {
            let _ = write!(line, ";from={}", join(id.from.iter().map(|n| n.to_string()).collect()));
        }
        if !id.uids.is_empty() {
            let _ = write!(line, ";uid={}", join(id.uids.iter().map(|u| u.to_string()).collect()));
        }
        if !forward.not_to.is_empty() {
            let _ = write!(line, ";not-to={}", join(forward.not_to.iter().map(|p| p.to_string()).collect()));
        }
        if !forward.nets.is_empty() {
            let _ = write!(line, ";to-net={}", join(forward.nets.iter().map(|n| n.to_string()).collect()));
        }
        if !forward.ports.is_empty() {
            let _ = write!(line, ";ports={}", join(forward.ports.iter().map(|p| p.to_string()).collect()));
        }
        if !forward.opaque.is_empty() {
            let _ = write!(line, ";opaque={}", join(forward.opaque.iter().map(|p| p.to_string()).collect()));
        }
        let mut text = format!("# wasiter: an allowlist drafted from what the clients of {listen} asked for (requests, and whether to= named it or a person allowed it)\n");
        for (host, n, decision, asked) in names {
            let how = match (decision, asked) {
                (_, Some(scope)) => format!("asked: a person allowed it ({scope})"),
                (Decision::Allow, None) => "listed".to_string(),
                _ => "would-deny: not in to=".to_string(),
            };
            let _ = writeln!(text, "#   {host}  {n}  {how}");
        }
        if self.passed_other > 0 {
            let _ = writeln!(text, "#   ...and {} requests to names past the first {MAX_DRAFT}", self.passed_other);
        }
        for (preset, seen) in &groups {
            let _ = writeln!(text, "# these {} names are @{} ({}; `wasiter presets @{}` lists its {}): {}", seen.len(), preset.name, preset.about, preset.name, preset.entries.len(), seen.join(" "));
        }
        let _ = writeln!(text, "{line}");
        (line, text)
    }
}

/// The names a draft holds, grouped under the presets that cover them (a
/// preset that covers more of them first; each name in one group), and the
/// names no preset covers.
fn by_preset<'a>(hosts: &[&'a str]) -> (Vec<(&'static crate::presets::Preset, Vec<&'a str>)>, Vec<&'a str>) {
    let mut left: Vec<&str> = hosts.to_vec();
    let mut groups = Vec::new();
    loop {
        // The most names covered; of equals, the first in the file.
        let best = crate::presets::all().iter().rev().map(|p| (p, left.iter().filter(|h| p.covers(h)).count())).filter(|(_, n)| *n > 0).max_by_key(|(_, n)| *n);
        let Some((preset, _)) = best else { break };
        let (seen, rest): (Vec<&str>, Vec<&str>) = left.into_iter().partition(|h| preset.covers(h));
        groups.push((preset, seen));
        left = rest;
    }
    (groups, left)
}

/// The name in a `host:port` the front recorded (the port last, after the
/// last colon, for an IPv6 address too).
fn name_of(asked: &str) -> &str {
    asked.rsplit_once(':').map_or(asked, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Pattern;

    #[test]
    fn the_draft_lists_the_names_let_through_ready_to_paste() {
        let mut d = Destinations::default();
        for (host, decision, rule) in [
            ("pypi.org", Decision::Allow, Rule::Listed),
            ("files.pythonhosted.org", Decision::WouldDeny, Rule::NotListed),
            ("pypi.org", Decision::Allow, Rule::Listed),
            ("evil.test", Decision::Deny, Rule::Address),
            ("own.test", Decision::WouldDeny, Rule::NotListed),
        ] {
            d.decided(host, decision, rule);
        }
        let f = Forward { to: vec![Pattern::parse("pypi.org").unwrap()], ports: vec![443, 80], report: true, ..Forward::default() };
        let (line, text) = d.draft("127.0.0.1:3128", &f);
        assert_eq!(line, "127.0.0.1:3128=forward;to=@python,own.test;ports=443,80", "denied names stay out; a preset's names under its name");
        assert!(text.contains("#   pypi.org  2  listed\n") && text.contains("#   files.pythonhosted.org  1  would-deny"), "{text}");
        assert!(text.contains("# these 2 names are @python (pip, uv and poetry installing packages from PyPI; `wasiter presets @python` lists its 2): files.pythonhosted.org pypi.org\n"), "{text}");
        assert!(text.ends_with(&format!("{line}\n")));
        assert_eq!(d.counts(), "files.pythonhosted.org=1(would-deny) own.test=1(would-deny) pypi.org=2");
        let get = |d0: Decision, r0: Rule| d.decisions().find(|(d1, r1, _)| (*d1, *r1) == (d0, r0)).map(|(_, _, n)| n);
        assert_eq!(get(Decision::Allow, Rule::Listed), Some(2));
        assert_eq!(get(Decision::WouldDeny, Rule::NotListed), Some(2));
        assert_eq!(get(Decision::Deny, Rule::Address), Some(1));
        assert_eq!(get(Decision::Allow, Rule::Port), None, "only combinations that can happen");
        assert_eq!(d.decisions().count(), 1 + 1 + (Rule::ALL.len() - 1), "allow by listed, would-deny by not-listed, deny by any other");
    }

    #[test]
    fn counts_stay_bounded_whatever_clients_ask() {
        let mut d = Destinations::default();
        for i in 0..MAX_DRAFT + 5 {
            d.decided(&format!("h{i}.test"), Decision::WouldDeny, Rule::NotListed);
            d.count(&format!("h{i}.test"));
        }
        assert_eq!((d.passed.len(), d.passed_other, d.hosts.len(), d.other), (MAX_DRAFT, 5, MAX_DESTINATIONS, (MAX_DRAFT + 5 - MAX_DESTINATIONS) as u64));
        assert!(d.draft("a:1", &Forward::default()).1.contains("...and 5 requests"));
    }
}
