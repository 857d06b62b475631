//! *forever*: an answer written into the routes file, so that the file
//! stays the one source of truth and the day's answers read as a diff.
//!
//! The route's own line gets the name added to its `to=` (or, refused for
//! good, to its `not-to=`), and a comment line above it says when, for
//! which client and how it was asked. Nothing else in the file changes:
//! other lines, comments and line endings are kept byte for byte. The
//! proxy then reloads the file (`proxy::reload`), which keeps every
//! connection.

use std::fmt::Write as _;

/// The line number in a route's origin ("PATH, line N"), if the route
/// came from the routes file at `path`.
pub fn line_of(origin: &str, path: &str) -> Option<usize> {
    origin.strip_prefix(path)?.strip_prefix(", line ")?.parse().ok()
}

/// `text` with `name` added to the `key` (`to` or `not-to`) of line `line`
/// (1-based), and `note` as a comment line above it. `Err` says why the
/// line cannot take it (gone, or not a forward or DNS route).
pub fn edit(text: &str, line: usize, key: &str, name: &str, note: &str) -> Result<String, String> {
    if name.is_empty() || name.bytes().any(|b| matches!(b, b';' | b',' | b'#' | b'=' | b'\r' | b'\n') || b.is_ascii_whitespace()) {
        return Err(format!("{name:?} cannot be written into a routes file as a name"));
    }
    let mut out = String::with_capacity(text.len() + 160);
    let mut found = false;
    for (n, raw) in text.split_inclusive('\n').enumerate() {
        if n + 1 != line {
            out.push_str(raw);
            continue;
        }
        let body = raw.trim_end_matches(['\n', '\r']);
        let ending = raw.get(body.len()..).unwrap_or("\n");
        let (rule, comment) = match body.find('#') {
            Some(at) => body.split_at(at),
            None => (body, ""),
        };
        let first = rule.split(';').next().unwrap_or_default();
        if !(first.trim_end().ends_with("=forward") || first.trim_end().ends_with("=dns")) {
            return Err(format!("line {line} is not a forward or DNS route any more ({:?}): the file changed; answer again after it is reloaded", first.trim()));
        }
        let indent = &body[..body.len() - body.trim_start().len()];
        let _ = write!(out, "{indent}# {note}{}", if ending.is_empty() { "\n" } else { ending });
        out.push_str(&with_name(rule.trim_end(), key, name));
        if !comment.is_empty() {
            out.push(' ');
            out.push_str(comment);
        }
        out.push_str(ending);
        found = true;
    }
    if !found {
        return Err(format!("the routes file has no line {line} any more: it changed; answer again after it is reloaded"));
    }
    Ok(out)
}

/// A rule line with `name` added to its `key=` list (or a `key=` added).
fn with_name(rule: &str, key: &str, name: &str) -> String {
    let prefix = format!("{key}=");
    let mut parts: Vec<String> = rule.split(';').map(str::to_string).collect();
    let at = parts.iter().skip(1).position(|p| p.trim_start().starts_with(&prefix)).map(|i| i + 1);
    match at.and_then(|i| parts.get_mut(i)) {
        Some(part) if part.trim().len() == prefix.len() => part.push_str(name),
        Some(part) => {
            let trimmed = part.trim_end().len();
            part.truncate(trimmed);
            part.push(',');
            part.push_str(name);
        }
        None => parts.push(format!("{prefix}{name}")),
    }
    parts.join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_joins_the_routes_line_and_nothing_else_changes() {
        let text = "# egress\r\n127.0.0.1:3128=forward;to=pypi.org;ask # the sandbox\r\n0.0.0.0:53=dns;to=pypi.org;ask\r\n";
        let out = edit(text, 2, "to", "api.github.com", "asked: allowed forever").unwrap();
        assert_eq!(out, "# egress\r\n# asked: allowed forever\r\n127.0.0.1:3128=forward;to=pypi.org,api.github.com;ask # the sandbox\r\n0.0.0.0:53=dns;to=pypi.org;ask\r\n");
        let out = edit(text, 3, "not-to", "evil.test", "n").unwrap();
        assert!(out.ends_with("# n\r\n0.0.0.0:53=dns;to=pypi.org;ask;not-to=evil.test\r\n"), "{out}");
        let empty = edit("h:1=forward;to=;ask", 1, "to", "a.test", "n").unwrap();
        assert_eq!(empty, "# n\nh:1=forward;to=a.test;ask");
    }

    #[test]
    fn a_changed_file_or_a_hostile_name_is_refused() {
        assert!(edit("h:1=a:2\n", 1, "to", "a.test", "n").unwrap_err().contains("not a forward or DNS route"));
        assert!(edit("h:1=forward;ask\n", 2, "to", "a.test", "n").unwrap_err().contains("no line 2"));
        for bad in ["a.test;to=*", "a.test,*", "a\nb", "a #x", ""] {
            assert!(edit("h:1=forward;ask\n", 1, "to", bad, "n").is_err(), "{bad:?}");
        }
        assert_eq!(line_of("/etc/w/routes, line 7", "/etc/w/routes"), Some(7));
        assert_eq!(line_of("--route", "/etc/w/routes"), None);
    }
}
