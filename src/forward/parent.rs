//! A parent proxy: where a forward route's traffic goes when every way out
//! passes through another proxy (a company's), with names that go direct
//! beside it (tinyproxy's `upstream http parent:3128` and
//! `upstream none ".internal"`).
//!
//! ```text
//! LISTEN=forward;to=...;parent=http://[USER:PASS@]HOST:PORT[;direct=NAME,...]
//! ```
//!
//! The allowlist is checked first, by the name the client asked for, as
//! for any client; only then is the parent asked. A tunnel (CONNECT or
//! SOCKS5) becomes a CONNECT to the parent, with `Proxy-Authorization` when
//! the URL has a login; a plain request goes to it in absolute form. The
//! parent's own name is looked up in the loop like every name. The name
//! asked for is not looked up here: the parent resolves it, so the address
//! rules (`to-net=` and the refused ranges) are the parent's to apply to the
//! names it reaches (an IP literal still needs `to=` or `to-net=` here).

use super::login::Login;
use crate::names::destination_host;

/// A parent proxy (HTTP; CONNECT for tunnels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parent {
    /// A name (lower case) or an IP literal (no brackets), and its port.
    pub host: String,
    pub port: u16,
    /// The URL's login, sent in `Proxy-Authorization`.
    auth: Option<Login>,
}

impl Parent {
    /// `http://[user:pass@]host:port`, as curl's `-x` takes it (the port is
    /// required: proxies listen on 3128, 8080 or 1080, no one default).
    pub fn parse(url: &str) -> Result<Parent, String> {
        let bad = |why: &str| format!("bad parent {url:?}: {why} (http://[USER:PASS@]HOST:PORT)");
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(bad(if url.contains("://") { "only an http:// parent is supported" } else { "no http://" }));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (login, hostport) = match rest.rsplit_once('@') {
            Some((login, hostport)) => (Some(login), hostport),
            None => (None, rest),
        };
        let auth = match login {
            Some(pair) => Some(Login::parse(pair).map_err(|_| bad("its login is not USER:PASS"))?),
            None => None,
        };
        let (host, port) = match hostport.strip_prefix('[') {
            Some(v6) => v6.split_once("]:").ok_or_else(|| bad("no port"))?,
            None => hostport.rsplit_once(':').ok_or_else(|| bad("no port"))?,
        };
        let port = port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("a bad port"))?;
        let host = destination_host(host).ok_or_else(|| bad("a bad host"))?;
        Ok(Parent { host, port, auth })
    }

    /// Its `host:port`, for messages.
    pub fn name(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The CONNECT that asks the parent for a tunnel to `host:port`.
    pub fn connect_request(&self, host: &str, port: u16) -> Vec<u8> {
        let target = authority(host, port);
        let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(auth) = &self.auth {
            req.push_str(&format!("Proxy-Authorization: {}\r\n", auth.header()));
        }
        req.push_str("\r\n");
        req.into_bytes()
    }

    /// A plain request's head, rewritten for the parent: the request line
    /// in absolute form (`GET http://host:port/path HTTP/1.1`) and the
    /// parent's login after it. `head` is the origin-form head the front
    /// made (`crate::front::proxy_request`).
    pub fn absolute_head(&self, head: &[u8], host: &str, port: u16) -> Vec<u8> {
        let line_end = head.windows(2).position(|w| w == b"\r\n").unwrap_or(head.len());
        let (line, rest) = head.split_at(line_end);
        let mut parts = line.splitn(2, |&b| b == b' ');
        let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        let mut out = Vec::with_capacity(head.len() + 64);
        out.extend_from_slice(method);
        out.extend_from_slice(format!(" http://{}", authority(host, port)).as_bytes());
        out.extend_from_slice(target);
        if let Some(auth) = &self.auth {
            out.extend_from_slice(format!("\r\nProxy-Authorization: {}", auth.header()).as_bytes());
        }
        out.extend_from_slice(rest);
        out
    }
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::Forward;
    use crate::names::Pattern;

    #[test]
    fn a_parent_is_an_http_url_with_a_port() {
        let p = Parent::parse("http://proxy.corp:3128").unwrap();
        assert_eq!((p.host.as_str(), p.port, p.auth), ("proxy.corp", 3128, None));
        let p = Parent::parse("http://dev:s3cret@10.0.0.1:8080/").unwrap();
        assert_eq!((p.host.as_str(), p.port, p.auth.as_ref().map(Login::header)), ("10.0.0.1", 8080, Some("Basic ZGV2OnMzY3JldA==")));
        assert_eq!(Parent::parse("http://[::1]:3128").unwrap().name(), "[::1]:3128");
        for (bad, why) in [
            ("proxy.corp:3128", "no http://"),
            ("socks5://proxy.corp:1080", "only an http:// parent"),
            ("http://proxy.corp", "no port"),
            ("http://proxy.corp:0", "a bad port"),
            ("http://pro xy:3128", "a bad host"),
            ("http://:pass@proxy:3128", "not USER:PASS"),
        ] {
            let e = Parent::parse(bad).unwrap_err();
            assert!(e.contains(why) && e.contains("http://[USER:PASS@]HOST:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn tunnels_are_a_connect_and_requests_go_in_absolute_form() {
        let p = Parent::parse("http://u:p@parent:3128").unwrap();
        assert_eq!(p.connect_request("pypi.org", 443), b"CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\nProxy-Authorization: Basic dTpw\r\n\r\n");
        assert_eq!(p.connect_request("::1", 22), b"CONNECT [::1]:22 HTTP/1.1\r\nHost: [::1]:22\r\nProxy-Authorization: Basic dTpw\r\n\r\n");
        let head = b"GET /simple/?q=1 HTTP/1.1\r\nHost: pypi.org\r\nAccept: */*\r\n\r\n";
        assert_eq!(
            String::from_utf8(p.absolute_head(head, "pypi.org", 80)).unwrap(),
            "GET http://pypi.org:80/simple/?q=1 HTTP/1.1\r\nProxy-Authorization: Basic dTpw\r\nHost: pypi.org\r\nAccept: */*\r\n\r\n"
        );
        let open = Parent::parse("http://parent:3128").unwrap();
        assert_eq!(open.absolute_head(b"HEAD / HTTP/1.1\r\n\r\n", "a.test", 8080), b"HEAD http://a.test:8080/ HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn direct_names_skip_the_parent() {
        let f = Forward {
            parent: Some(Parent::parse("http://parent:3128").unwrap()),
            direct: ["*.internal", "git.corp", "10.1.2.3"].iter().map(|p| Pattern::parse(p).unwrap()).collect(),
            ..Forward::default()
        };
        assert!(f.parent_for("pypi.org").is_some());
        assert!(f.parent_for("wiki.internal").is_none() && f.parent_for("git.corp").is_none() && f.parent_for("10.1.2.3").is_none());
        assert!(f.parent_for("git.corp.evil.test").is_some(), "a pattern matches whole labels");
        assert!(Forward::default().parent_for("pypi.org").is_none(), "no parent: all direct");
    }
}
