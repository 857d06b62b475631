//! The guide cannot go stale where it points into the code: every link of
//! the form [`TEXT`](../src/FILE#LN) in docs/*.md and the README must land
//! on a line that holds TEXT; and every route example in the guide (a
//! `--route '...'` or a `WASITER_ROUTES=...` line) must be one that
//! wasiter accepts (`wasiter --check`, the native build: `scripts/build`).

use std::path::Path;
use std::process::Command;

fn pages() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = vec![("README.md".to_string(), std::fs::read_to_string(root.join("README.md")).unwrap())];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            out.push((format!("docs/{}", path.file_name().unwrap().to_string_lossy()), std::fs::read_to_string(&path).unwrap()));
        }
    }
    out
}

#[test]
fn links_to_code_lines_land_on_what_they_name() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (page, text) in pages() {
        let base = if page.starts_with("docs/") { root.join("docs") } else { root.to_path_buf() };
        for (i, _) in text.match_indices("[`") {
            let rest = &text[i + 2..];
            let Some(end) = rest.find("`](") else { continue };
            let name = &rest[..end];
            let target = &rest[end + 3..];
            let Some(close) = target.find(')') else { continue };
            let Some((file, line)) = target[..close].split_once("#L") else { continue };
            let Ok(line) = line.parse::<usize>() else { continue };
            let code = std::fs::read_to_string(base.join(file)).unwrap_or_else(|e| panic!("{page}: {file}: {e}"));
            let at = code.lines().nth(line - 1).unwrap_or_default();
            if !at.contains(name) {
                // Say where the text is now, so a fix is one edit.
                let now: Vec<String> = code.lines().enumerate().filter(|(_, l)| l.contains(name)).map(|(n, _)| format!("#L{}", n + 1)).collect();
                wrong.push(format!("{page}: [`{name}`]({file}#L{line}) points at {at:?}; the text is at {now:?}"));
            }
            checked += 1;
        }
    }
    assert!(wrong.is_empty(), "links that moved:\n{}", wrong.join("\n"));
    assert!(checked >= 9, "the code links were found ({checked})");
}

/// A line of a code block that is a route rule as a routes file holds
/// it: a listen address (`:8080`, `0.0.0.0:80`, `[::]:443`, `udp:...`,
/// `unix:/...`, a range), `=`, the rest; a trailing `# comment` dropped.
fn rule_line(line: &str) -> Option<String> {
    let rule = line.trim().split(" #").next()?.trim();
    let (listen, rest) = rule.split_once('=')?;
    let addr = listen.trim_start_matches("udp:").trim_start_matches("tcp:");
    let looks = addr.starts_with("unix:/")
        || (addr.contains(':') && !addr.contains(' ') && addr.rsplit(':').next()?.split('-').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())));
    (looks && !rest.is_empty() && !rest.contains(' ')).then(|| rule.to_string())
}

/// The route rules in the guide's examples: `--route '...'`, the rules of
/// a `WASITER_ROUTES='...'` (one per line or word), and routes-file lines.
fn route_examples() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (page, text) in pages() {
        // WASITER_ROUTES='...' (or "..."), over one or more lines: its value.
        let mut routes_value: Option<String> = None;
        for line in text.lines() {
            if let Some(v) = routes_value.as_mut() {
                match line.split_once(['\'', '"']) {
                    Some((last, _)) => {
                        v.push_str(last);
                        out.extend(v.split_whitespace().filter_map(rule_line).map(|r| (page.clone(), r)));
                        routes_value = None;
                    }
                    None => v.push_str(&format!(" {line}")),
                }
                continue;
            }
            if let Some(at) = line.find("WASITER_ROUTES=") {
                let value = &line[at + 15..];
                match value.split_once(['\'', '"']) {
                    Some((whole, _)) => out.extend(whole.split_whitespace().filter_map(rule_line).map(|r| (page.clone(), r))),
                    None => routes_value = Some(value.to_string()),
                }
            }
            if line.starts_with("    ") && !line.contains("--route") && !line.contains("WASITER_ROUTES") {
                if let Some(r) = rule_line(line) {
                    out.push((page.clone(), r));
                }
            }
            let mut rest = line;
            while let Some(at) = rest.find("--route '") {
                rest = &rest[at + 9..];
                if let Some(end) = rest.find('\'') {
                    out.push((page.clone(), rest[..end].to_string()));
                    rest = &rest[end..];
                }
            }
        }
    }
    out
}

#[test]
fn route_examples_in_the_guide_are_accepted() {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/wasiter");
    if !bin.exists() {
        panic!("{} is missing: scripts/build first (scripts/test does)", bin.display());
    }
    let examples = route_examples();
    assert!(examples.len() >= 20, "examples found: {examples:?}");
    eprintln!("{} route examples", examples.len());
    for (page, rule) in examples {
        // Names resolve at start, not at --check; files named by cert=/key=
        // are read at start too: the rule's form is what is checked.
        let out = Command::new(&bin).args(["--check", "--route", &rule]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{page}: --route '{rule}' is refused: {err}");
    }
}

/// Every route example starts for real: names resolved, cert.pem read,
/// ports bound and a connection accepted on each; and the egress refusal
/// the guide quotes is the 403 a forward route sends for it. tests/doc_routes.py runs
/// them in a network and mount namespace of their own (`unshare -n -m`), so
/// the guide's ports are free and its names resolve to loopback only.
#[test]
fn route_examples_in_the_guide_start() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = root.join("target/release/wasiter");
    assert!(bin.exists(), "{} is missing: scripts/build first (scripts/test does)", bin.display());
    let probe = Command::new("unshare").args(["-n", "-m", "true"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: the guide's routes were not started: `unshare -n -m` is not allowed here (run as root)");
        return;
    }
    let examples = route_examples();
    let mut rules: String = examples.iter().map(|(page, rule)| format!("{page}\t{rule}\n")).collect();
    let refusals: Vec<String> = pages()
        .iter()
        .flat_map(|(_, text)| text.lines().filter(|l| l.starts_with("    wasiter: ") && l.contains(" refused (rule ")).map(|l| l.trim().to_string()).collect::<Vec<_>>())
        .collect();
    assert!(!refusals.is_empty(), "the guide quotes an egress refusal");
    rules.extend(refusals.iter().map(|r| format!("refusal\t{r}\n")));
    let mut child = Command::new("unshare")
        .args(["-n", "-m", "python3"])
        .arg(root.join("tests/doc_routes.py"))
        .arg(&bin)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    eprint!("{report}");
    assert!(out.status.success(), "route examples that did not start:\n{}", report.lines().filter(|l| l.starts_with("FAIL")).collect::<Vec<_>>().join("\n"));
    assert_eq!(report.lines().filter(|l| l.starts_with("ok ")).count(), examples.len() + refusals.len(), "every example reported");
}

/// The start-up refusals the guide quotes (`wasiter: REMOTE: "..." is not
/// valid: ...`, `wasiter: --route: "..." ...`) are what wasiter prints for
/// that input, word for word up to a closing `...`, with exit code 2.
#[test]
fn refusals_the_guide_quotes_are_what_wasiter_says() {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/wasiter");
    assert!(bin.exists(), "{} is missing: scripts/build first (scripts/test does)", bin.display());
    let mut checked = 0;
    for (page, text) in pages() {
        for line in text.lines().filter_map(|l| l.strip_prefix("    wasiter: ")) {
            let Some((setting, rest)) = line.split_once(": \"") else { continue };
            let Some((given, _)) = rest.split_once("\" is not valid") else { continue };
            let mut cmd = Command::new(&bin);
            match setting {
                "REMOTE" => cmd.env("LOCAL", ":8080").env("REMOTE", given),
                "--route" => cmd.args(["--route", given]),
                _ => panic!("{page}: a quoted refusal of {setting}: teach this test to make it"),
            };
            let out = cmd.output().unwrap();
            let said = String::from_utf8_lossy(&out.stderr);
            let quoted = format!("wasiter: {}", line.trim_end_matches("..."));
            assert!(said.starts_with(&quoted), "{page} quotes\n  {quoted}\nwasiter says\n  {said}");
            assert_eq!(out.status.code(), Some(2), "{page}: {setting}={given}");
            checked += 1;
        }
    }
    assert!(checked >= 2, "the quoted refusals were found ({checked})");
}

/// "The WasmEdge build is N.NN MB": the figure the guide states is the
/// build's (within 0.02 MB), so a growing module cannot leave it behind.
#[test]
fn the_module_size_the_guide_states_is_the_builds() {
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wasm32-wasip1/release/wasiter.wasm");
    let Ok(meta) = std::fs::metadata(&wasm) else {
        panic!("{} is missing: scripts/build first (scripts/test does)", wasm.display());
    };
    let actual = meta.len() as f64 / 1e6;
    let mut stated = 0;
    for (page, text) in pages() {
        let flat = text.replace('\n', " ");
        for (i, _) in flat.match_indices("The WasmEdge build is ") {
            let figure: String = flat[i + 22..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            let mb: f64 = figure.parse().unwrap_or_else(|_| panic!("{page}: no figure after 'The WasmEdge build is'"));
            assert!((mb - actual).abs() <= 0.02, "{page} says the WasmEdge build is {mb} MB; it is {actual:.2} MB: update the page");
            stated += 1;
        }
    }
    assert!(stated >= 1, "the guide states the module's size somewhere");
}
