//! Budgets per destination: how much one client may ask of a name (or a
//! preset) in a time window: requests, bytes up, bytes down. They bound
//! what a runaway or hijacked agent can send even to an allowed name.
//!
//! ```text
//! budget=api.github.com:200req,5MiB-up,50MiB-down/1h
//! budget=@python+files.example.com:2GiB-down/1d
//! ```
//! Names are joined by `+` (a preset counts as its names); the limits by
//! `,`; the window after `/`. One budget is shared by everything it names,
//! per client (its address), in fixed windows that start with the client's
//! first request. The request that would pass a limit is refused (`429`,
//! `rule=budget`); a connection that passes a byte limit while it runs is
//! closed (`reason=over-budget`). Counted in `Spending`, which the loop
//! keeps; at most `MAX_WINDOWS` clients' windows at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::names::Pattern;

/// Windows kept at once (client x budget); beyond it, the oldest window
/// is forgotten (its client starts afresh).
pub const MAX_WINDOWS: usize = 4096;

/// One `budget=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    /// What it names, as written (its label in metrics and refusals).
    pub shown: String,
    pub names: Vec<Pattern>,
    pub requests: Option<u64>,
    pub up: Option<u64>,
    pub down: Option<u64>,
    pub window: Duration,
}

impl Budget {
    /// `NAMES:LIMITS/WINDOW`.
    pub fn parse(value: &str) -> Result<Budget, String> {
        let form = "NAME[+NAME...]:LIMIT[,LIMIT...]/WINDOW, a LIMIT being 200req, 5MiB-up or 50MiB-down, e.g. budget=api.github.com:200req,5MiB-up/1h";
        let bad = |why: String| format!("bad budget {value:?}: {why} (expected {form})");
        let (names, rest) = value.split_once(':').ok_or_else(|| bad("no ':' after the names".into()))?;
        let (limits, window) = rest.rsplit_once('/').ok_or_else(|| bad("no '/WINDOW'".into()))?;
        let window = humantime::parse_duration(window.trim()).ok().filter(|w| !w.is_zero() && *w <= Duration::from_secs(31 * 86400)).ok_or_else(|| bad(format!("the window {window:?} is not a duration of at most 31 days (1h, 10m, 1d)")))?;
        let mut patterns = Vec::new();
        for name in names.split('+').map(str::trim) {
            if name.starts_with('@') {
                patterns.extend(crate::presets::expand(name).map_err(bad)?);
            } else {
                patterns.push(Pattern::parse(name).map_err(bad)?);
            }
        }
        let mut b = Budget { shown: names.trim().to_string(), names: patterns, requests: None, up: None, down: None, window };
        for limit in limits.split(',').map(str::trim) {
            let (amount, slot) = if let Some(n) = limit.strip_suffix("req") {
                (n.parse::<u64>().ok(), &mut b.requests)
            } else if let Some(n) = limit.strip_suffix("-up") {
                (size(n), &mut b.up)
            } else if let Some(n) = limit.strip_suffix("-down") {
                (size(n), &mut b.down)
            } else {
                return Err(bad(format!("{limit:?} is not a limit")));
            };
            let amount = amount.filter(|n| *n > 0).ok_or_else(|| bad(format!("{limit:?}: a positive number (sizes as 512KiB, 5MiB, 1GiB)")))?;
            if slot.replace(amount).is_some() {
                return Err(bad(format!("{limit:?}: that limit is given twice")));
            }
        }
        Ok(b)
    }

    pub fn covers(&self, host: &str) -> bool {
        self.names.iter().any(|p| p.matches(host))
    }
}

/// `5MiB`, `512KiB`, `1GiB`, `100MB` (as MiB), or bytes.
fn size(s: &str) -> Option<u64> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// Whose use a connection counts toward: its route (listen address), the
/// budget's index in the route's list, and the client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Charge {
    pub route: String,
    pub budget: usize,
    pub client: IpAddr,
}

/// One client's use of one budget in its current window.
#[derive(Clone, Copy, Debug)]
struct Window {
    started: Instant,
    requests: u64,
    up: u64,
    down: u64,
}

/// What every client has used, and what was refused, per budget.
#[derive(Default)]
pub struct Spending {
    windows: HashMap<Charge, Window>,
    /// Refusals and closes, by (route, budget index).
    refused: HashMap<(String, usize), u64>,
}

impl Spending {
    /// A request (or tunnel) to a name `budget` covers: counted, or `Err`
    /// saying which limit it would pass.
    pub fn request(&mut self, charge: &Charge, budget: &Budget, now: Instant) -> Result<(), String> {
        let w = self.window(charge, budget, now);
        let over = if budget.requests.is_some_and(|limit| w.requests >= limit) {
            Some(format!("{} requests", w.requests))
        } else if budget.up.is_some_and(|limit| w.up >= limit) {
            Some(format!("{} bytes up", w.up))
        } else if budget.down.is_some_and(|limit| w.down >= limit) {
            Some(format!("{} bytes down", w.down))
        } else {
            None
        };
        if let Some(used) = over {
            let left = budget.window.saturating_sub(now.saturating_duration_since(w.started));
            *self.refused.entry((charge.route.clone(), charge.budget)).or_default() += 1;
            return Err(format!("{} used its budget for {} ({used} in this window of {}; it starts again in {}s)", charge.client, budget.shown, humantime::format_duration(budget.window), left.as_secs().max(1)));
        }
        w.requests += 1;
        Ok(())
    }

    /// Bytes a connection moved: counted; `Err` once a byte limit is passed.
    pub fn bytes(&mut self, charge: &Charge, budget: &Budget, (up, down): (u64, u64), now: Instant) -> Result<(), String> {
        let w = self.window(charge, budget, now);
        w.up += up;
        w.down += down;
        let over = budget.up.filter(|limit| w.up > *limit).map(|l| format!("{} bytes up, past {l}", w.up)).or_else(|| budget.down.filter(|limit| w.down > *limit).map(|l| format!("{} bytes down, past {l}", w.down)));
        match over {
            Some(used) => {
                *self.refused.entry((charge.route.clone(), charge.budget)).or_default() += 1;
                Err(format!("{} passed its budget for {} ({used} in this window of {})", charge.client, budget.shown, humantime::format_duration(budget.window)))
            }
            None => Ok(()),
        }
    }

    /// The client's window, a fresh one when the last has ended.
    fn window(&mut self, charge: &Charge, budget: &Budget, now: Instant) -> &mut Window {
        if !self.windows.contains_key(charge) && self.windows.len() >= MAX_WINDOWS {
            self.windows.retain(|_, w| now.saturating_duration_since(w.started) < budget.window);
            if self.windows.len() >= MAX_WINDOWS {
                if let Some(oldest) = self.windows.iter().min_by_key(|(_, w)| w.started).map(|(c, _)| c.clone()) {
                    self.windows.remove(&oldest);
                }
            }
        }
        let fresh = Window { started: now, requests: 0, up: 0, down: 0 };
        let w = self.windows.entry(charge.clone()).or_insert(fresh);
        if now.saturating_duration_since(w.started) >= budget.window {
            *w = fresh;
        }
        w
    }

    /// For the metrics: per (route, budget index), the fullest client's
    /// use in its current window (requests, up, down), and the refusals.
    pub fn view(&self, route: &str, budgets: &[Budget], now: Instant) -> Vec<(String, [u64; 3], u64)> {
        budgets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let live = self.windows.iter().filter(|(c, w)| c.route == route && c.budget == i && now.saturating_duration_since(w.started) < b.window);
                let most = live.fold([0u64; 3], |m, (_, w)| [m[0].max(w.requests), m[1].max(w.up), m[2].max(w.down)]);
                (b.shown.clone(), most, self.refused.get(&(route.to_string(), i)).copied().unwrap_or(0))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_reads_names_limits_and_a_window() {
        let b = Budget::parse("api.github.com+*.githubusercontent.com:200req,5MiB-up,50MiB-down/1h").unwrap();
        assert_eq!((b.requests, b.up, b.down, b.window), (Some(200), Some(5 << 20), Some(50 << 20), Duration::from_secs(3600)));
        assert!(b.covers("api.github.com") && b.covers("raw.githubusercontent.com") && !b.covers("github.com"));
        assert!(Budget::parse("@python:1GiB-down/1d").unwrap().covers("files.pythonhosted.org"));
        for (bad, want) in [
            ("a.test/1h", "no ':'"),
            ("a.test:10req", "no '/WINDOW'"),
            ("a.test:10req/0s", "the window"),
            ("a.test:10/1h", "is not a limit"),
            ("a.test:0req/1h", "a positive number"),
            ("a.test:5XB-up/1h", "a positive number"),
            ("a.test:1req,2req/1h", "given twice"),
            ("@nope:1req/1h", "unknown preset"),
        ] {
            assert!(Budget::parse(bad).unwrap_err().contains(want), "{bad}: {:?}", Budget::parse(bad));
        }
    }

    #[test]
    fn the_request_past_a_limit_is_refused_until_the_window_ends() {
        let b = Budget::parse("a.test:2req,1KiB-down/10s").unwrap();
        let (mut s, now) = (Spending::default(), Instant::now());
        let c = Charge { route: "r".into(), budget: 0, client: "10.0.0.2".parse().unwrap() };
        let other = Charge { client: "10.0.0.3".parse().unwrap(), ..c.clone() };
        assert!(s.request(&c, &b, now).is_ok() && s.request(&c, &b, now).is_ok());
        assert!(s.request(&c, &b, now).unwrap_err().contains("used its budget for a.test (2 requests"));
        assert!(s.request(&other, &b, now).is_ok(), "per client");
        assert!(s.request(&c, &b, now + Duration::from_secs(10)).is_ok(), "a new window");
        assert!(s.bytes(&other, &b, (0, 1024), now).is_ok());
        assert!(s.bytes(&other, &b, (0, 1), now).unwrap_err().contains("1025 bytes down, past 1024"));
        assert!(s.request(&other, &b, now).unwrap_err().contains("bytes down"), "spent: the next request is refused");
        let view = s.view("r", &[b], now);
        assert_eq!(view, vec![("a.test".to_string(), [1, 0, 1025], 3)]);
    }
}
