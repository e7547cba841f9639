//! Test harness: an engine on a mock clock, and a tiny SIP client that answers challenges.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quanta::{Clock, Instant, Mock};
use sipgw::digest::{self, Algorithm, Qop};
use sipgw::engine::{Verdict, WallClock};
use sipgw::{Config, CredentialStore, Engine, Event, Secrets};

pub const CREDENTIALS: &str = r#"
[[account]]
name = "alice"
password = "secret"

[[account]]
name = "bob"
password = "hunter2"

[[account]]
name = "trunk"
mode = "ip"
allow = ["198.18.9.0/24"]

[[account]]
name = "pbx"
mode = "ip+port"
allow = ["198.18.8.1:5060"]
"#;

pub struct Gw {
    pub engine: Engine,
    pub clock: Clock,
    pub mock: Arc<Mock>,
    pub reply: Vec<u8>,
    pub last_len: usize,
}

impl Gw {
    pub fn new(config: &str) -> Gw {
        Self::with_credentials(config, CREDENTIALS)
    }

    pub fn with_credentials(config: &str, credentials: &str) -> Gw {
        let config = Config::parse(config, "test.toml", None).expect("test config");
        let store = CredentialStore::parse_for(
            credentials,
            "creds.toml",
            &config.auth.realm,
            &config.auth.hashes(),
        )
        .expect("test credentials");
        let (clock, mock) = Clock::mock();
        // Start well after the mock's zero so "now - x" never saturates in tests.
        mock.increment(Duration::from_secs(1000));
        let wall = WallClock {
            origin: clock.now(),
            origin_unix: Duration::from_secs(1_700_000_000),
        };
        let secrets = Secrets::new(&config, [7u8; 64]);
        let engine = Engine::new(&config, Arc::new(store), &secrets, wall);
        Gw {
            engine,
            clock,
            mock,
            reply: vec![0u8; 4096],
            last_len: 0,
        }
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    pub fn advance(&mut self, d: Duration) {
        self.mock.increment(d);
        let now = self.now();
        self.engine.handle_timeout(now);
    }

    pub fn send(&mut self, peer: &str, msg: &[u8]) -> Verdict {
        let peer: SocketAddr = peer.parse().expect("peer address");
        let now = self.now();
        let v = self.engine.handle(now, peer, msg, &mut self.reply);
        self.last_len = match v {
            Verdict::Reply { len, .. } => len,
            _ => 0,
        };
        v
    }

    pub fn reply_bytes(&self) -> &[u8] {
        &self.reply[..self.last_len]
    }

    pub fn reply_text(&self) -> String {
        String::from_utf8_lossy(self.reply_bytes()).into_owned()
    }

    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.engine.poll_event()).collect()
    }

    /// The challenge in the last reply.
    pub fn challenge(&self) -> Challenge {
        Challenge::parse(self.reply_bytes())
            .unwrap_or_else(|| panic!("no challenge in reply:\n{}", self.reply_text()))
    }
}

#[derive(Debug, Clone)]
pub struct Challenge {
    pub status: u16,
    pub header: &'static str,
    pub realm: String,
    pub nonce: String,
    pub qop: bool,
    pub stale: bool,
}

fn param(line: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let start = line.find(&key)? + key.len();
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_owned())
}

impl Challenge {
    pub fn parse(reply: &[u8]) -> Option<Challenge> {
        let text = std::str::from_utf8(reply).ok()?;
        let status: u16 = text.get(8..11)?.parse().ok()?;
        let (header, line) = text.lines().find_map(|l| {
            if let Some(rest) = l.strip_prefix("WWW-Authenticate: ") {
                Some(("Authorization", rest))
            } else {
                l.strip_prefix("Proxy-Authenticate: ")
                    .map(|rest| ("Proxy-Authorization", rest))
            }
        })?;
        Some(Challenge {
            status,
            header,
            realm: param(line, "realm")?,
            nonce: param(line, "nonce")?,
            qop: line.contains("qop=\"auth\""),
            stale: line.contains("stale=true"),
        })
    }
}

/// A request from `user` (From and To) with an optional extra header block.
pub fn request(method: &str, user: &str, call_id: &str, cseq: u32, extra: &str) -> Vec<u8> {
    let uri = if method == "REGISTER" {
        "sip:198.18.0.1".to_owned()
    } else {
        "sip:callee@198.18.0.1".to_owned()
    };
    format!(
        "{method} {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bK{call_id}{cseq}\r\n\
         Max-Forwards: 70\r\n\
         User-Agent: test phone (sipgw)\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER\r\n\
         From: <sip:{user}@198.18.0.1>;tag=ft{call_id}\r\n\
         To: <sip:{user}@198.18.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:{user}@198.18.0.2:5060>\r\n\
         {extra}\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The credentials header line answering `ch` for `method` (`nc` used when qop is offered).
pub fn authorization(ch: &Challenge, user: &str, password: &str, method: &str, nc: u32) -> String {
    authorization_with(ch, user, password, method, nc, Algorithm::Md5)
}

/// [`authorization`] with `algorithm`.
pub fn authorization_with(
    ch: &Challenge,
    user: &str,
    password: &str,
    method: &str,
    nc: u32,
    algorithm: Algorithm,
) -> String {
    let uri = if method == "REGISTER" {
        "sip:198.18.0.1"
    } else {
        "sip:callee@198.18.0.1"
    };
    let ha1 = digest::ha1_with(
        algorithm.hash(),
        user.as_bytes(),
        ch.realm.as_bytes(),
        password.as_bytes(),
    );
    let nc_s = format!("{nc:08x}");
    let cnonce = "0a4f113b";
    let qop = if ch.qop { Qop::Auth } else { Qop::None };
    let resp = digest::client_response(
        ha1.as_bytes(),
        method.as_bytes(),
        uri.as_bytes(),
        ch.nonce.as_bytes(),
        qop,
        nc_s.as_bytes(),
        cnonce.as_bytes(),
        algorithm,
        b"",
    );
    let resp = resp.as_str().to_owned();
    let qop_part = if ch.qop {
        format!(", qop=auth, nc={nc_s}, cnonce=\"{cnonce}\"")
    } else {
        String::new()
    };
    format!(
        "{}: Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{resp}\", algorithm={}{qop_part}\r\n",
        ch.header,
        ch.realm,
        ch.nonce,
        algorithm.as_str()
    )
}

/// A phone: keeps its Call-ID and CSeq, answers challenges.
pub struct Phone {
    pub addr: String,
    pub user: String,
    pub call_id: String,
    pub cseq: u32,
    pub method: String,
}

impl Phone {
    pub fn new(addr: &str, user: &str, call_id: &str) -> Phone {
        Phone {
            addr: addr.to_owned(),
            user: user.to_owned(),
            call_id: call_id.to_owned(),
            cseq: 0,
            method: "REGISTER".to_owned(),
        }
    }

    pub fn invite(mut self) -> Phone {
        self.method = "INVITE".to_owned();
        self
    }

    /// Send the request without credentials.
    pub fn bare(&mut self, gw: &mut Gw) -> Verdict {
        self.cseq += 1;
        let msg = request(&self.method, &self.user, &self.call_id, self.cseq, "");
        gw.send(&self.addr, &msg)
    }

    /// Send the request answering `ch` with `password`.
    pub fn answer(&mut self, gw: &mut Gw, ch: &Challenge, password: &str) -> Verdict {
        self.cseq += 1;
        let auth = authorization(ch, &self.user, password, &self.method, 1);
        let msg = request(&self.method, &self.user, &self.call_id, self.cseq, &auth);
        gw.send(&self.addr, &msg)
    }

    /// Get a challenge, then answer it.
    pub fn login(&mut self, gw: &mut Gw, password: &str) -> Verdict {
        let v = self.bare(gw);
        assert!(
            matches!(
                v,
                Verdict::Reply {
                    status: 401 | 407,
                    ..
                }
            ),
            "expected a challenge, got {v:?}"
        );
        let ch = gw.challenge();
        self.answer(gw, &ch, password)
    }
}

pub fn is_challenge(v: Verdict) -> bool {
    matches!(
        v,
        Verdict::Reply {
            status: 401 | 407,
            ..
        }
    )
}
