use super::*;

fn rules(list: &str) -> HttpRules {
    let mut rules = HttpRules::default();
    for item in list.split(',') {
        rules.push(parse(item).unwrap());
    }
    rules
}

/// The contract's example: GitHub's API read-only but for one repository,
/// git fetches from any repository and pushes to one.
const GITHUB: &str = "api.github.com/**:GET|HEAD,api.github.com/repos/me/proj/**:POST|PATCH|PUT|DELETE,github.com/*/*/info/refs:GET,github.com/*/*/git-upload-pack:POST,github.com/me/proj.git/git-receive-pack:POST";

#[test]
fn a_rule_reads_as_written_or_says_what_is_wrong() {
    let cases = [
        ("api.github.com:GET", "allow-http=api.github.com:GET: expected HOST/PATH:METHODS, the path starting with /"),
        ("api.github.com/x", "allow-http=api.github.com/x: expected HOST/PATH:METHODS"),
        ("a..b/x:GET", "allow-http=a..b/x:GET: bad name"),
        ("a.test/x:get", "allow-http=a.test/x:get: \"get\" is no method (upper case"),
        ("a.test/x:GET|", "allow-http=a.test/x:GET|: \"\" is no method"),
        ("a.test/x/a**:GET", "allow-http=a.test/x/a**:GET: \"a**\": ** stands alone as a segment"),
        ("a.test/x/../y:GET", "allow-http=a.test/x/../y:GET: its path: a \"..\" segment"),
        ("a.test/x//y:GET", "allow-http=a.test/x//y:GET: its path: an empty segment (//)"),
        ("a.test/x?q=1:GET", "allow-http=a.test/x?q=1:GET: a rule's path has no query"),
    ];
    for (item, want) in cases {
        let e = parse(item).unwrap_err();
        assert!(e.starts_with(want), "{item}: {e}");
    }
    let r = parse("*.github.com/a/*.git/**:*").unwrap();
    assert_eq!(r.to_string(), "*.github.com/a/*.git/**:*");
    assert_eq!(r.methods, None);
    assert_eq!(r.path, ["a", "*.git", "**"]);
}

#[test]
fn git_smart_http_and_a_read_only_api_with_one_writable_repository() {
    let r = rules(GITHUB);
    let ok = [
        ("GET", "github.com", "/someone/lib.git/info/refs?service=git-upload-pack"),
        ("GET", "github.com", "/someone/lib/info/refs?service=git-receive-pack"),
        ("POST", "github.com", "/someone/lib.git/git-upload-pack"),
        ("POST", "github.com", "/someone/lib/git-upload-pack"),
        ("POST", "github.com", "/me/proj.git/git-receive-pack"),
        ("GET", "api.github.com", "/"),
        ("GET", "api.github.com", "/repos/someone/lib/pulls?state=open"),
        ("HEAD", "api.github.com", "/user"),
        ("POST", "api.github.com", "/repos/me/proj/pulls"),
        ("DELETE", "api.github.com", "/repos/me/proj"),
        ("POST", "api.github.com", "/repos/me/proj/issues/1/comments"),
        // No rule names it: not restricted by them.
        ("DELETE", "registry.npmjs.org", "/anything/../at/all"),
    ];
    for (method, host, target) in ok {
        assert_eq!(r.check(host, method, target), Ok(()), "{method} {host}{target}");
    }
    let refused = [
        ("POST", "github.com", "/me/proj/git-receive-pack"),
        ("POST", "github.com", "/someone/lib.git/git-receive-pack"),
        ("GET", "github.com", "/someone/lib.git/info"),
        ("GET", "github.com", "/a/b/c/info/refs"),
        ("POST", "api.github.com", "/repos/someone/lib/pulls"),
        ("POST", "api.github.com", "/repos/me/project/pulls"),
        ("PUT", "api.github.com", "/repos/me"),
        ("get", "api.github.com", "/user"),
        ("OPTIONS", "api.github.com", "/user"),
    ];
    for (method, host, target) in refused {
        let e = r.check(host, method, target).unwrap_err();
        assert!(e.contains("is allowed by no rule for it (allow-http="), "{method} {host}{target}: {e}");
    }
    let e = r.check("github.com", "POST", "/someone/lib.git/git-receive-pack?x").unwrap_err();
    assert_eq!(e, "POST /someone/lib.git/git-receive-pack to github.com is allowed by no rule for it (allow-http=github.com/*/*/info/refs:GET,github.com/*/*/git-upload-pack:POST,github.com/me/proj.git/git-receive-pack:POST)");
    assert!(r.names("api.github.com") && r.names("github.com") && !r.names("gist.github.com"));
    assert!(!r.is_empty() && HttpRules::default().is_empty());
}

#[test]
fn no_spelling_of_a_dot_segment_climbs_out() {
    let r = rules(GITHUB);
    for target in [
        "/repos/me/proj/../../other/x/pulls",
        "/repos/me/proj/%2e%2e/%2E%2E/other/x/pulls",
        "/repos/me/proj/.%2e/%2e./other/x/pulls",
        "/repos/me/proj/%2E%2e/x",
        "/repos/me/proj/./x",
        "/repos/me/proj/%2e/x",
        "/repos/me/proj/..;x/..;/other/x",
        "/repos/me/proj/..%3bx/other",
        "/repos/me/proj/..",
        "/repos/me/proj/%2e%2e",
        "/repos/me/proj/..%2F..%2Fother%2Fx",
        "/repos/me/proj/..%2f..%2fother",
        "/repos/me/proj/..%5C..%5cother",
        "/repos/me/proj/..\\..\\other",
        "/repos/me/proj//../other",
        "/repos//me/proj/x",
        "/repos/me/proj/x%00",
        "/repos/me/proj/x%0a",
        "/repos/me/proj/x%",
        "/repos/me/proj/x%2",
        "/repos/me/proj/x%zz",
        "/repos/me/proj/x#/../../y",
        "/repos/me/proj/\u{e9}",
        "/repos/me/proj/x\ty",
        "repos/me/proj/x",
        "*",
    ] {
        let e = r.check("api.github.com", "POST", target).unwrap_err();
        assert!(e.contains("so no allow-http rule can judge it"), "{target}: {e}");
        assert!(normalize(target).is_err(), "{target}");
    }
}

#[test]
fn unreserved_characters_are_decoded_and_the_rest_kept_in_upper_case_hex() {
    assert_eq!(normalize("/repos/%6De/pro%6a/x%7e-%2D_%5F?q=%2e%2e/..").unwrap(), "/repos/me/proj/x~--__");
    assert_eq!(normalize("/a%20b/%c3%a9/%3a%2a").unwrap(), "/a%20b/%C3%A9/%3A%2A");
    // An encoded % is kept: %252e stays an encoded % and the text 2e.
    assert_eq!(normalize("/repos/me/proj/%252e%252e/x").unwrap(), "/repos/me/proj/%252e%252e/x");
    assert_eq!(normalize("/").unwrap(), "/");
    assert_eq!(normalize("/a/").unwrap(), "/a/");
    assert_eq!(normalize("/.../...x/.a/a.").unwrap(), "/.../...x/.a/a.", "not dot segments");
    let r = rules(GITHUB);
    assert_eq!(r.check("api.github.com", "POST", "/repos/%6De/proj/pulls"), Ok(()));
    let e = r.check("api.github.com", "POST", "/repos/me/proj/%252e%252e/x").map(|_| "allowed, as /repos/me/proj/ is");
    assert_eq!(e, Ok("allowed, as /repos/me/proj/ is"));
    assert!(r.check("api.github.com", "POST", "/repos/ME/proj/pulls").is_err(), "paths compare with case");
    // %2A in a rule is a literal *, not a wildcard.
    let lit = rules("a.test/x/%2A:GET");
    assert_eq!(lit.check("a.test", "GET", "/x/%2a"), Ok(()));
    assert!(lit.check("a.test", "GET", "/x/y").is_err());
}

#[test]
fn stars_within_a_segment_and_across_segments() {
    let cases = [
        ("/*.git/info", "/a.git/info", true),
        ("/*.git/info", "/.git/info", true),
        ("/*.git/info", "/a.gitx/info", false),
        ("/*.git/info", "/a/b.git/info", false),
        ("/a*b*c", "/aXXbYYc", true),
        ("/a*b*c", "/aXXbYY", false),
        ("/**", "/", true),
        ("/**", "/a/b/c", true),
        ("/a/**/z", "/a/z", true),
        ("/a/**/z", "/a/b/c/z", true),
        ("/a/**/z", "/a/b/c/zz", false),
        ("/a/**/**/z", "/a/z", true),
        ("/a/*", "/a", false),
        ("/a/*", "/a/b/c", false),
        ("/a", "/a/", false),
    ];
    for (pattern, path, want) in cases {
        let r = rules(&format!("a.test{pattern}:GET"));
        assert_eq!(r.check("a.test", "GET", path).is_ok(), want, "{pattern} {path}");
    }
    // Many stars cannot make a match slow.
    let r = rules("a.test/**/**/**/**/**/**/**/**/*a*a*a*a*a*a*a*a*b:GET");
    let long = format!("/{}/{}", ["a"; 200].join("/"), "a".repeat(3000));
    assert!(r.check("a.test", "GET", &long).is_err());
}
