//! git over HTTPS through the proxy with a placeholder for a password
//! (issue 45): `git http-backend` behind the origin takes only the real
//! token; the route's rules let git fetch from any repository and push to
//! one. What the sandbox keeps (the clone, git's output) never holds the
//! value.

use super::keys_peers::*;
use super::*;
use std::path::PathBuf;

/// Every file under `dir`, as text (lossy), with its path.
fn all_files(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap().map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            all_files(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
}

pub fn git_clones_and_pushes_through_the_proxy_with_a_placeholder(rt: Runtime) {
    if !sealed(rt, "git_clones_and_pushes_through_the_proxy_with_a_placeholder") {
        return;
    }
    let mut k = Keys::start(rt, &[]);
    let ph = k.ph("GIT_TOKEN").to_string();
    let sandbox = k.dir.path().join("sandbox");
    std::fs::create_dir_all(&sandbox).unwrap();
    let (proxy, ca) = (format!("http.proxy={}", k.proxy_url()), format!("http.sslCAInfo={}", k.ca_pem().display()));
    let git = |dir: &Path, args: &[&str]| {
        let out = git_command(dir).args(["-c", &proxy, "-c", &ca, "-c", "credential.helper=", "-c", "protocol.version=2"]).args(args).output().expect("git");
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    // Clone: the placeholder is the password in the URL.
    let (ok, said) = git(&sandbox, &["clone", &format!("https://x:{ph}@github.test/me/proj.git"), "proj"]);
    assert!(ok, "the clone through the proxy: {said}");
    let proj = sandbox.join("proj");
    assert_eq!(std::fs::read_to_string(proj.join("README")).unwrap(), "first\n");
    let real = format!("Basic {}", base64(&format!("x:{REAL_GIT}")));
    let got = k.origin.wait_for("the clone's upload-pack with the real token", |r| r["path"] == "/me/proj.git/git-upload-pack" && header(r, "Authorization").as_deref() == Some(real.as_str()));
    assert_eq!(got["method"], "POST");
    k.assert_clean("git clone's output", &said);
    // Push to the repository the rules allow.
    std::fs::write(proj.join("README"), "second\n").unwrap();
    let (ok, said) = git(&proj, &["commit", "-qam", "second"]);
    assert!(ok, "{said}");
    let (ok, said) = git(&proj, &["push", "origin", "main"]);
    assert!(ok, "the push to me/proj: {said}");
    k.assert_clean("git push's output", &said);
    let bare = k.dir.path().join("git/me/proj.git");
    let out = git_command(&bare).args(["log", "-1", "--format=%s", "main"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "second", "the bare repository has the pushed commit");
    k.origin.wait_for("the push with the real token", |r| r["path"] == "/me/proj.git/git-receive-pack" && header(r, "Authorization").as_deref() == Some(real.as_str()));
    // Push to another repository: its receive-pack is refused by the rules.
    let other = format!("https://x:{ph}@github.test/other/repo.git");
    let (ok, said) = git(&proj, &["push", &other, "main"]);
    assert!(!ok && said.contains("403"), "the push to other/repo is refused: {said}");
    k.assert_clean("the refused push's output", &said);
    let line = k.denied_by("http-rule");
    assert!(line.values().any(|v| v.contains("github.test")), "the decision names the host: {line:?}");
    assert!(!k.origin.requests().iter().any(|r| r["path"] == "/other/repo.git/git-receive-pack"), "the refused push never reached the origin");
    let other_bare = k.dir.path().join("git/other/repo.git");
    let out = git_command(&other_bare).args(["log", "-1", "--format=%s", "main"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "first", "other/repo is unchanged");
    // Fetching from the other repository is allowed (upload-pack everywhere).
    let (ok, said) = git(&sandbox, &["clone", "-q", &other, "other"]);
    assert!(ok, "{said}");
    // Nothing the sandbox kept holds the value (the clone's config has the placeholder).
    let mut files = Vec::new();
    all_files(&sandbox, &mut files);
    for (path, text) in &files {
        k.assert_clean(&path.display().to_string(), text);
    }
    assert!(files.iter().any(|(_, text)| text.contains(&ph)), "the clone's remote URL keeps the placeholder");
    k.assert_log_clean();
}
