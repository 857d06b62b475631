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

/// Is `tool` on PATH? (`wasmedge --version`, `wasmtime --version`.)
fn on_path(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Run a page's shell lines from the repository root, as a learner would,
/// in a network namespace of its own when one can be made (`unshare -n`,
/// loopback up): the pages' fixed ports are then free whatever else runs.
fn run_as_written(script: &str) -> std::process::Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sealed = Command::new("unshare").args(["-n", "true"]).output().is_ok_and(|o| o.status.success());
    let mut cmd = if sealed {
        let mut c = Command::new("unshare");
        c.args(["-n", "bash", "-c", &format!("ip link set lo up\n{script}")]);
        c
    } else {
        eprintln!("(no network namespace here: the page's ports are used as they are)");
        let mut c = Command::new("bash");
        c.args(["-c", script]);
        c
    };
    cmd.current_dir(root).output().unwrap()
}

/// The shell lines of the first fenced block after `marker`, and the marker's line.
fn block_after(text: &str, marker: &str) -> Option<(String, Vec<String>)> {
    let at = text.find(marker)?;
    let line = text[at..].lines().next()?.to_string();
    let rest = &text[at..];
    let open = rest.find("```sh")?;
    let body = &rest[open + 5..];
    let close = body.find("```")?;
    Some((line, body[..close].lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()))
}

/// Each block of the learner's pages marked "runs as written" runs, as
/// written, from the repository root, and prints what its marker says
/// (`<!-- runs as written (tests/docs.rs), needs TOOL, prints: TEXT -->`).
/// A block whose runtime is missing says SKIPPED.
#[test]
fn the_learners_commands_run_as_written() {
    let mut ran = 0;
    for (page, text) in pages() {
        let mut rest = text.as_str();
        while let Some((marker, lines)) = block_after(rest, "<!-- runs as written") {
            rest = &rest[rest.find("<!-- runs as written").unwrap_or_default() + 20..];
            let needs = marker.split("needs ").nth(1).and_then(|s| s.split(',').next()).unwrap_or_default().trim().to_string();
            let prints = marker.split("prints: ").nth(1).map(|s| s.trim_end_matches("-->").trim().to_string()).unwrap_or_default();
            assert!(!needs.is_empty() && !prints.is_empty(), "{page}: the marker says what it needs and prints: {marker}");
            if !on_path(&needs) {
                eprintln!("SKIPPED: {page}: {needs} is not on PATH: {lines:?} did not run");
                continue;
            }
            let out = run_as_written(&lines.join("\n"));
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{page}: {lines:?} failed: {}", String::from_utf8_lossy(&out.stderr));
            assert!(said.lines().any(|l| l.trim() == prints), "{page}: {lines:?} printed {said:?}, not {prints:?}");
            ran += 1;
        }
    }
    assert!(ran > 0 || !on_path("wasmtime"), "the learner's blocks were found");
}

/// The README's first command starts wasiter, as written, from the
/// repository root (after `scripts/build`).
#[test]
fn the_readmes_first_command_starts_wasiter() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let first = readme.lines().find(|l| l.starts_with("    ")).unwrap().trim().to_string();
    let runtime = first.split_whitespace().next().unwrap_or_default();
    if !on_path(runtime) {
        eprintln!("SKIPPED: {runtime} is not on PATH: the README's first command did not run");
        return;
    }
    // Its start line says it listens; then it is stopped. (unshare and bash
    // exec it: the child is wasiter's runtime itself.)
    let sealed = Command::new("unshare").args(["-n", "true"]).output().is_ok_and(|o| o.status.success());
    let mut cmd = Command::new(if sealed { "unshare" } else { "bash" });
    if sealed {
        cmd.args(["-n", "bash", "-c", &format!("ip link set lo up && exec {first}")]);
    } else {
        cmd.args(["-c", &format!("exec {first}")]);
    }
    let mut child = cmd.current_dir(env!("CARGO_MANIFEST_DIR")).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    // Whatever happens, it does not outlive the minute (and once it is
    // stopped below, the watchdog is called off: its pid could be reused).
    let (done, stop) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(std::time::Duration::from_secs(60)) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });
    use std::io::BufRead;
    let mut said = Vec::new();
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok) {
        let started = line.contains(" start listen=0.0.0.0:8080 ");
        said.push(line);
        if started {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = done.send(());
    let _ = watchdog.join();
    let started = said.last().is_some_and(|l| l.contains(" start listen="));
    assert!(started, "the README's first command, {first:?}, did not start wasiter: {said:?}");
}

/// The trace in docs/wasi-sockets.md is a fresh run's, call for call: its
/// three lines "by hand" run as written (the server, wasiter under WasmEdge
/// with --trace, the client), and `scripts/trace-tour --compare` names the
/// fds as the page does and compares every host call but the waits.
#[test]
fn the_trace_on_the_page_is_a_fresh_runs() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/wasi-sockets.md")).unwrap();
    let (_, lines) = block_after(&text, "<!-- the trace by hand").expect("the page gives the trace by hand");
    assert_eq!(lines.len(), 3, "three commands: {lines:?}");
    if !on_path("wasmedge") {
        eprintln!("SKIPPED: wasmedge is not on PATH: the page's trace (WasmEdge's) was not compared");
        return;
    }
    // wasiter's trace goes to stderr, as in a terminal; the rest to stdout.
    // As a learner does, each after the one before is ready (the server
    // listening; the client waits for wasiter itself); then both stopped
    // (the server is gone already unless the client failed).
    let ready = "until ss -ltn | grep -q ':7071 '; do sleep 0.1; done";
    let script = format!("{}\n{ready}\n{}\n{}\nsleep 0.5\nkill %1 %2 2>/dev/null\nwait", lines[0], lines[1], lines[2]);
    let out = run_as_written(&script);
    let (said, err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("echo:ping"), "the client's answer: {said:?}; the run said:\n{err}");
    let mut compare = Command::new("scripts/trace-tour")
        .arg("--compare")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    compare.stdin.take().unwrap().write_all(&out.stderr).unwrap();
    let said = compare.wait_with_output().unwrap();
    assert!(said.status.success(), "{}", String::from_utf8_lossy(&said.stderr));
    eprint!("{}", String::from_utf8_lossy(&said.stdout));
}

/// The learner's afternoon names its files with their lengths: each exists
/// and is within a sixth of what the page says, so that the page is
/// rewritten when a file has really grown or shrunk.
#[test]
fn the_afternoons_files_are_as_long_as_the_page_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("docs/learn.md")).unwrap();
    let mut rows = 0;
    for line in page.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(file), Some(Ok(stated))) = (cells.get(1).map(|c| c.trim_matches('`')), cells.get(2).map(|c| c.parse::<usize>())) else { continue };
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("docs/learn.md names {file}: {e}"));
        let lines = text.lines().count();
        assert!(lines.abs_diff(stated) * 6 <= stated, "docs/learn.md says {file} has {stated} lines; it has {lines}: update the page");
        rows += 1;
    }
    assert!(rows >= 10, "the afternoon's files were found ({rows})");
}
