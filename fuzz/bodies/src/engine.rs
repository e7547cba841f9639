//! `engine`: sequences of datagrams from several peers (IPv4 and IPv6, several ports) through
//! one engine on a mock clock, with timers, batches, nonce rotations and reloads.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use quanta::{Clock, Mock};
use sipgw::addr::canonical;
use sipgw::credentials::AuthMode;
use sipgw::digest::{self, Algorithm, Credentials, Job, Qop};
use sipgw::engine::{Datagram, PassReason, Verdict, WallClock, MAX_REPLY_GROWTH};
use sipgw::sip::{self, HeaderName, Message, Method};
use sipgw::validate;
use sipgw::{Config, CredentialStore, Engine, Secrets};

use crate::input::Reader;

/// The accounts of the integration tests (`gateway/tests/common/mod.rs`) and an IPv6 trunk.
const CREDENTIALS: &str = r#"
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
name = "v6trunk"
mode = "ip"
allow = ["2001:db8:9::/48"]

[[account]]
name = "pbx"
mode = "ip+port"
allow = ["198.18.8.1:5060"]
"#;

/// Table sizes at their minimum: an engine per input must be cheap.
const SMALL: &str = "[limits]\nmax_terminals = 1024\nmax_sessions = 1024\nmax_sources = 1024\n";

/// `[auth]`, extra `[limits]` and `[nonce]` settings of the configurations an input runs
/// under (its first byte chooses; reloads switch between them).
const VARIANTS: &[(&str, &str, &str)] = &[
    ("", "", ""),
    ("challenge_mode = 1\nqop = \"none\"\n", "", ""),
    (
        "challenge_mode = 3\nreply_unauthorized = \"off\"\nno_auth_methods = [\"OPTIONS\"]\n",
        "",
        "",
    ),
    (
        "check_digest_uri = true\nmax_retry = 2\nsession_retry = 2\nsource_max_retry = 3\n",
        "amplification_limit = 3.0\n",
        "lifetime = 5\n",
    ),
    (
        "suspend_scope = \"source\"\nban_source_on_suspend = false\naccount_budget = 3\n",
        "amplification_limit = 1.5\n",
        "lifetime = 5\ngrace = 0\n",
    ),
    (
        "suspend_scope = \"terminal\"\nmax_retry = 0\nipv6_prefix = 128\nsession_timeout = 1\n",
        "",
        "",
    ),
];

fn variant_config(v: usize) -> Config {
    let (auth, limits, nonce) = VARIANTS[v % VARIANTS.len()];
    let text = format!("[auth]\n{auth}{SMALL}{limits}[nonce]\nreplay_table_size = 1024\n{nonce}");
    Config::parse(&text, "fuzz.toml", None).expect("a fuzz configuration")
}

/// The peers: IPv4 on several ports, the address-authenticated trunk and PBX (and the PBX's
/// address on another port), IPv6 on several ports and networks, an IPv4-mapped address.
const PEERS: &[&str] = &[
    "198.18.0.2:5060",
    "198.18.0.2:5062",
    "198.18.0.3:5060",
    "198.18.9.5:5060",
    "198.18.8.1:5060",
    "198.18.8.1:5061",
    "[2001:db8::2]:5060",
    "[2001:db8::2]:5070",
    "[2001:db8:0:1::3]:5060",
    "[::ffff:198.18.0.2]:5060",
    "[2001:db8:9::1]:5060",
];

const METHODS: &[&str] = &[
    "REGISTER",
    "INVITE",
    "OPTIONS",
    "BYE",
    "ACK",
    "CANCEL",
    "SUBSCRIBE",
    "MESSAGE",
];
const USERS: &[(&str, &str)] = &[
    ("alice", "secret"),
    ("bob", "hunter2"),
    ("mallory", "x"),
    ("", ""),
];
const REALM: &str = "sipgw";
const TIME_STEPS: &[u64] = &[
    100, 1_000, 4_000, 6_000, 11_000, 31_000, 61_000, 181_000, 601_000, 3_601_000,
];

/// The last challenge a peer received.
#[derive(Clone)]
struct Challenge {
    nonce: Vec<u8>,
    qop: bool,
    /// `Authorization` (401) or `Proxy-Authorization` (407).
    header: &'static str,
}

struct State {
    engine: Engine,
    clock: Clock,
    mock: Arc<Mock>,
    store: Arc<CredentialStore>,
    variant: usize,
    config: Config,
    /// Nonces of every challenge sent, by the (canonical) address they were sent to.
    minted: HashMap<IpAddr, Vec<Vec<u8>>>,
    challenge: HashMap<SocketAddr, Challenge>,
    last: HashMap<SocketAddr, Vec<u8>>,
    nc: u32,
}

/// Input: the configuration variant, then up to 48 operations: a request built from a
/// template (method, user, Call-ID, CSeq, extra header, mutations, and credentials: none,
/// answering the peer's last challenge with the right or a wrong password, another peer's
/// nonce, another realm, fuzzed bytes, duplicated), raw datagram bytes, a retransmission,
/// a batch of those through `handle_batch`, time passing (and timers run), a nonce rotation
/// or a reload, draining events.
///
/// Properties: no panic; every reply parses as a 401/407/403 response carrying the request's
/// Call-ID and CSeq and one challenge header as its status says; no reply more than
/// `MAX_REPLY_GROWTH` bytes larger than its request, nor larger than `amplification_limit`
/// times it unless the request echoed a nonce minted for its address; a forward only for a
/// request that parses and carries Via, From, To, Call-ID and CSeq, either from an address
/// account's address or with exactly one set of our credentials that verify for a known
/// account against a nonce minted for the source; a pass only for a response, ACK, CANCEL or
/// a no-auth method.
pub fn engine(data: &[u8]) {
    let mut r = Reader::new(data);
    let variant = r.pick(VARIANTS.len());
    let config = variant_config(variant);
    let store = Arc::new(
        CredentialStore::parse(CREDENTIALS, "creds.toml", REALM).expect("fuzz credentials"),
    );
    let (clock, mock) = Clock::mock();
    mock.increment(Duration::from_secs(1000));
    let wall = WallClock {
        origin: clock.now(),
        origin_unix: Duration::from_secs(1_700_000_000),
    };
    let secrets = Secrets::new(&config, [7u8; 64]);
    let engine = Engine::new(&config, store.clone(), &secrets, wall);
    let mut s = State {
        engine,
        clock,
        mock,
        store,
        variant,
        config,
        minted: HashMap::new(),
        challenge: HashMap::new(),
        last: HashMap::new(),
        nc: 0,
    };
    for _ in 0..48 {
        if r.is_empty() {
            break;
        }
        match r.pick(10) {
            0..=2 => {
                let peer = peer(&mut r);
                let msg = s.template(&mut r, peer);
                let cap = reply_cap(&mut r);
                s.single(peer, &msg, cap);
            }
            3 => {
                let peer = peer(&mut r);
                let msg = r.blob().to_vec();
                s.single(peer, &msg, 4096);
            }
            4 => {
                let from = peer(&mut r);
                let peer = peer(&mut r);
                if let Some(msg) = s.last.get(&from).cloned() {
                    s.single(peer, &msg, 4096);
                }
            }
            5 => {
                let n = 1 + r.pick(8);
                let mut items = Vec::new();
                for _ in 0..n {
                    let peer = peer(&mut r);
                    let msg = match r.pick(4) {
                        0 => r.blob().to_vec(),
                        1 => s.last.get(&peer).cloned().unwrap_or_default(),
                        _ => s.template(&mut r, peer),
                    };
                    items.push((peer, msg, reply_cap(&mut r)));
                }
                s.batch(&items);
            }
            6 => {
                let step = TIME_STEPS[r.pick(TIME_STEPS.len())];
                s.mock.increment(Duration::from_millis(step));
                let now = s.clock.now();
                if r.bool() || s.engine.poll_timeout().is_some_and(|t| t <= now) {
                    s.engine.handle_timeout(now);
                }
            }
            7 => {
                let now = s.clock.now();
                if r.bool() {
                    let mut next = [0u8; 32];
                    next.copy_from_slice(&[r.u8(); 32]);
                    s.engine.rotate_nonce_secret(now, next);
                } else {
                    let v = r.pick(VARIANTS.len());
                    let next = variant_config(v);
                    s.engine.reconfigure(now, &next, &s.config);
                    s.config = next;
                    s.variant = v;
                }
            }
            _ => s.drain(),
        }
        s.drain();
    }
}

fn peer(r: &mut Reader<'_>) -> SocketAddr {
    PEERS[r.pick(PEERS.len())].parse().expect("peer address")
}

fn reply_cap(r: &mut Reader<'_>) -> usize {
    match r.u8() {
        0..=7 => usize::from(r.u8()) * 2,
        _ => 4096,
    }
}

fn host(peer: SocketAddr) -> String {
    match peer.ip() {
        IpAddr::V4(ip) => format!("{ip}:{}", peer.port()),
        IpAddr::V6(ip) => format!("[{ip}]:{}", peer.port()),
    }
}

impl State {
    /// A request from `peer` built from the template and the input's choices.
    fn template(&mut self, r: &mut Reader<'_>, peer: SocketAddr) -> Vec<u8> {
        let method = match r.pick(METHODS.len() + 1) {
            i if i < METHODS.len() => METHODS[i].to_owned(),
            _ => String::from_utf8_lossy(r.short()).into_owned(),
        };
        let (user, password) = match r.pick(USERS.len() + 1) {
            i if i < USERS.len() => (USERS[i].0.to_owned(), USERS[i].1),
            _ => (String::from_utf8_lossy(r.short()).into_owned(), "x"),
        };
        let call_id = match r.pick(5) {
            4 => String::from_utf8_lossy(r.short()).into_owned(),
            i => format!("c{i}@fuzz"),
        };
        let cseq = r.u8();
        let uri = if method == "REGISTER" {
            "sip:198.18.0.1".to_owned()
        } else {
            format!("sip:{user}@198.18.0.1")
        };
        let h = host(peer);
        let mut headers: Vec<(String, Vec<u8>)> = vec![
            (
                "Via".into(),
                format!("SIP/2.0/UDP {h};rport;branch=z9hG4bK{call_id}{cseq}").into(),
            ),
            ("Max-Forwards".into(), b"70".to_vec()),
            (
                "From".into(),
                format!("<sip:{user}@198.18.0.1>;tag=ft{call_id}").into(),
            ),
            ("To".into(), format!("<sip:{user}@198.18.0.1>").into()),
            ("Call-ID".into(), call_id.clone().into()),
            ("CSeq".into(), format!("{cseq} {method}").into()),
            ("Contact".into(), format!("<sip:{user}@{h}>").into()),
        ];
        // Credentials.
        let choice = r.pick(8);
        let flags = r.u8();
        let answered = match choice {
            1 | 2 | 4 | 6 | 7 => self.challenge.get(&peer).cloned(),
            3 => {
                let other = crate::engine::peer(r);
                self.challenge.get(&other).cloned()
            }
            _ => None,
        };
        let ch = answered.unwrap_or(Challenge {
            nonce: b"AAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_vec(),
            qop: true,
            header: "Proxy-Authorization",
        });
        self.nc = self.nc.wrapping_add(1);
        let nc = if choice == 7 {
            u32::from(r.u16())
        } else {
            self.nc
        };
        let digest_uri = if flags & 2 != 0 {
            "sip:elsewhere"
        } else {
            &uri
        };
        let answer = |password: &str, realm: &str| {
            credentials(
                &ch,
                &user,
                password,
                realm,
                &method,
                digest_uri,
                nc,
                flags & 4 == 0,
            )
        };
        match choice {
            0 => {}
            1 | 3 | 7 => headers.push((ch.header.into(), answer(password, REALM))),
            2 => headers.push((ch.header.into(), answer("nope", REALM))),
            4 => headers.push((ch.header.into(), answer(password, "other"))),
            5 => {
                let name = if flags & 8 != 0 {
                    "Authorization"
                } else {
                    "Proxy-Authorization"
                };
                headers.push((name.into(), r.short().to_vec()));
            }
            _ => {
                headers.push(("Authorization".into(), answer(password, REALM)));
                headers.push(("Proxy-Authorization".into(), answer(password, REALM)));
            }
        }
        if flags & 16 != 0 {
            headers.push(("X-Fuzz".into(), r.short().to_vec()));
        }
        // Mutations of the header section.
        let k = r.pick(7).min(headers.len().saturating_sub(1));
        match r.pick(8) {
            1 => {
                headers.remove(k);
            }
            2 => {
                let h = headers[k].clone();
                headers.push(h);
            }
            3 => {
                for (name, _) in &mut headers {
                    let compact = match name.as_str() {
                        "Via" => "v",
                        "From" => "f",
                        "To" => "t",
                        "Call-ID" => "i",
                        "Contact" => "m",
                        _ => continue,
                    };
                    *name = compact.into();
                }
            }
            4 => {
                let v = &mut headers[k].1;
                let at = v.iter().position(|&b| b == b';').unwrap_or(v.len());
                v.splice(at..at, b"\r\n ".iter().copied());
            }
            5 => headers[k].1 = r.short().to_vec(),
            6 => headers[k].0 = String::from_utf8_lossy(r.short()).into_owned(),
            _ => {}
        }
        let body = if flags & 32 != 0 {
            r.short().to_vec()
        } else {
            Vec::new()
        };
        let mut msg = format!("{method} {uri} SIP/2.0\r\n").into_bytes();
        for (name, value) in &headers {
            msg.extend_from_slice(name.as_bytes());
            msg.extend_from_slice(b": ");
            msg.extend_from_slice(value);
            msg.extend_from_slice(b"\r\n");
        }
        if flags & 64 == 0 {
            msg.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        msg.extend_from_slice(b"\r\n");
        msg.extend_from_slice(&body);
        msg
    }

    fn single(&mut self, peer: SocketAddr, msg: &[u8], cap: usize) {
        let known = self.knows_nonce_in(peer, msg);
        let mut reply = vec![0u8; cap];
        let now = self.clock.now();
        let v = self.engine.handle(now, peer, msg, &mut reply);
        self.check(peer, msg, known, v, &reply);
        self.last.insert(peer, msg.to_vec());
    }

    fn batch(&mut self, items: &[(SocketAddr, Vec<u8>, usize)]) {
        let known: Vec<bool> = items
            .iter()
            .map(|(p, m, _)| self.knows_nonce_in(*p, m))
            .collect();
        let datagrams: Vec<Datagram<'_>> = items
            .iter()
            .map(|(peer, bytes, _)| Datagram::new(*peer, bytes))
            .collect();
        let mut replies: Vec<Vec<u8>> = items.iter().map(|(_, _, cap)| vec![0u8; *cap]).collect();
        let mut verdicts = vec![Verdict::default(); items.len()];
        let now = self.clock.now();
        let n = self
            .engine
            .handle_batch(now, &datagrams, &mut replies, &mut verdicts);
        assert_eq!(n, items.len());
        for (i, (peer, msg, _)) in items.iter().enumerate() {
            assert_ne!(
                verdicts[i],
                Verdict::default(),
                "every datagram of a batch is decided"
            );
            self.check(*peer, msg, known[i], verdicts[i], &replies[i]);
            self.last.insert(*peer, msg.clone());
        }
    }

    /// Whether `msg` contains a nonce that was sent to `peer`'s address (so the engine may
    /// take it as a proven round trip).
    fn knows_nonce_in(&self, peer: SocketAddr, msg: &[u8]) -> bool {
        self.minted
            .get(&canonical(peer.ip()))
            .is_some_and(|ns| ns.iter().any(|n| msg.windows(n.len()).any(|w| w == &n[..])))
    }

    fn check(&mut self, peer: SocketAddr, msg: &[u8], proven: bool, v: Verdict, reply: &[u8]) {
        let parsed = Message::parse(msg);
        match v {
            Verdict::Reply { len, status } => {
                let req = parsed.expect("a reply to a request that parses");
                assert!(req.is_request());
                assert!(len <= reply.len());
                assert!(
                    len <= msg.len() + MAX_REPLY_GROWTH,
                    "reply of {len} bytes to {}",
                    msg.len()
                );
                if !proven {
                    let limit = u64::from(self.config.limits.amplification_limit_milli);
                    assert!(
                        len as u64 * 1000 <= msg.len() as u64 * limit,
                        "amplification: reply of {len} bytes to {} (limit {limit}/1000)",
                        msg.len()
                    );
                }
                let out = &reply[..len];
                let rep = Message::parse(out).unwrap_or_else(|e| {
                    panic!(
                        "reply does not parse ({e}):\n{}",
                        String::from_utf8_lossy(out)
                    )
                });
                assert_eq!(rep.status_code(), Some(status));
                assert_eq!(
                    rep.header(HeaderName::CallId),
                    req.header(HeaderName::CallId)
                );
                assert_eq!(rep.header(HeaderName::CSeq), req.header(HeaderName::CSeq));
                if matches!(status, 400 | 420) {
                    // Only a request that fails validation is answered 400/420, with its reason.
                    let invalid = validate::request(&req).expect_err("400/420 to a valid request");
                    assert_eq!(invalid.status(), status);
                    assert!(out.starts_with(invalid.status_line()));
                    return;
                }
                assert_eq!(
                    validate::request(&req),
                    Ok(()),
                    "an invalid request challenged or refused instead of 400"
                );
                let to = rep.header(HeaderName::To).expect("a To");
                // A To that is not one name-addr (a tel: or other-scheme URI in a list) may hide
                // the tag we append; validation lets only well-formed ones through.
                let single_uri = |to: &[u8]| {
                    !to.contains(&b',')
                        && sip::name_addr_uri(to).is_some_and(|u| {
                            let u = u.to_ascii_lowercase();
                            u.starts_with(b"sip:")
                                || u.starts_with(b"sips:")
                                || u.starts_with(b"tel:")
                        })
                };
                if req.header(HeaderName::To).is_some_and(single_uri) {
                    assert!(
                        sip::header_param(to, b"tag").is_some(),
                        "our To-tag:\n{}",
                        String::from_utf8_lossy(out)
                    );
                }
                let named = |name: &str| {
                    rep.headers()
                        .filter(|h| h.raw_name.eq_ignore_ascii_case(name.as_bytes()))
                        .map(|h| h.value)
                        .collect::<Vec<_>>()
                };
                let (www, proxy) = (named("WWW-Authenticate"), named("Proxy-Authenticate"));
                let (challenge, header) = match status {
                    401 => {
                        assert_eq!((www.len(), proxy.len()), (1, 0));
                        (www[0], "Authorization")
                    }
                    407 => {
                        assert_eq!((www.len(), proxy.len()), (0, 1));
                        (proxy[0], "Proxy-Authorization")
                    }
                    403 => {
                        assert_eq!((www.len(), proxy.len()), (0, 0));
                        return;
                    }
                    s => panic!("reply status {s}"),
                };
                let nonce = quoted_param(challenge, b"nonce=\"").expect("a nonce");
                let qop = challenge.windows(10).any(|w| w == b"qop=\"auth\"");
                let nonce = nonce.to_vec();
                let ip = canonical(peer.ip());
                let ns = self.minted.entry(ip).or_default();
                if !ns.contains(&nonce) {
                    ns.push(nonce.clone());
                }
                self.challenge
                    .insert(peer, Challenge { nonce, qop, header });
            }
            Verdict::Forward(id) => {
                let req = parsed.expect("a forwarded request parses");
                assert!(req.is_request());
                // Nothing that fails validation is forwarded; the headers a proxy relies on
                // are there exactly once.
                assert_eq!(validate::request(&req), Ok(()), "forwarded invalid");
                assert!(req.count(HeaderName::Via) >= 1, "forwarded without a Via");
                for h in [
                    HeaderName::From,
                    HeaderName::To,
                    HeaderName::CallId,
                    HeaderName::CSeq,
                ] {
                    assert_eq!(req.count(h), 1, "forwarded with {h:?} not exactly once");
                }
                match id.mode {
                    AuthMode::Ip | AuthMode::IpPort => {
                        assert_eq!(self.store.by_address(peer), Some((id.account, id.mode)));
                    }
                    AuthMode::Password => self.check_digest(peer, &req, id.account, proven),
                }
            }
            Verdict::Pass(reason) => {
                let req = parsed.expect("a passed datagram parses");
                assert_eq!(validate::message(&req), Ok(()), "passed invalid");
                match reason {
                    PassReason::Response => assert!(!req.is_request()),
                    PassReason::Ack => assert_eq!(req.method(), Some(Method::Ack)),
                    PassReason::Cancel => assert_eq!(req.method(), Some(Method::Cancel)),
                    PassReason::NoAuthMethod => {
                        let m = req.method().expect("a request");
                        assert!(self.config.auth.no_auth_methods.contains(&m));
                    }
                    PassReason::InDialog => panic!("no dialog proxy is set: nothing is in-dialog"),
                }
            }
            Verdict::Drop(_) => {}
        }
    }

    /// A request forwarded as authenticated by password: exactly one set of credentials for
    /// our realm, with a nonce minted for this address, whose response verifies for the
    /// account.
    fn check_digest(
        &self,
        peer: SocketAddr,
        req: &Message<'_>,
        account: sipgw::credentials::AccountId,
        proven: bool,
    ) {
        assert!(proven, "forwarded without a nonce minted for {peer}");
        let ours: Vec<Credentials<'_>> = req
            .headers_named(HeaderName::Authorization)
            .chain(req.headers_named(HeaderName::ProxyAuthorization))
            .filter_map(|v| Credentials::parse(v).ok())
            .filter(|c| c.realm.eq_unescaped(REALM.as_bytes()))
            .collect();
        assert_eq!(
            ours.len(),
            1,
            "forwarded with {} sets of credentials",
            ours.len()
        );
        let c = &ours[0];
        let mut buf = [0u8; 256];
        let user = c
            .username
            .unescape_into(&mut buf)
            .expect("a short username");
        let (found, ha1s) = self.store.by_username(user).expect("a known user");
        assert_eq!(found, account);
        let ha1 = ha1s
            .get(c.algorithm.hash())
            .expect("an HA1 for every offered hash");
        let job = Job {
            ha1: ha1.as_bytes(),
            method: req.method_bytes().expect("a request"),
            credentials: c,
            body: req.body(),
        };
        assert!(digest::verify(&job), "forwarded with a wrong digest");
        if self.config.auth.check_digest_uri {
            assert!(c.uri.eq_unescaped(req.request_uri().expect("a request")));
        }
    }

    fn drain(&mut self) {
        while let Some(e) = self.engine.poll_event() {
            let _ = format!("{e:?}");
        }
        while self.engine.poll_shard_message().is_some() {}
        let _ = (
            self.engine.counters(),
            self.engine.events_dropped(),
            self.variant,
        );
    }
}

/// The value of `key"…"` in a challenge header.
fn quoted_param<'a>(v: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = v.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &v[at..];
    let end = rest.iter().position(|&b| b == b'"')?;
    Some(&rest[..end])
}

/// A credentials header value answering `ch`.
#[allow(clippy::too_many_arguments)]
fn credentials(
    ch: &Challenge,
    user: &str,
    password: &str,
    realm: &str,
    method: &str,
    uri: &str,
    nc: u32,
    use_qop: bool,
) -> Vec<u8> {
    let ha1 = digest::ha1(user.as_bytes(), realm.as_bytes(), password.as_bytes());
    let nc_s = format!("{nc:08x}");
    let cnonce = "0a4f113b";
    let qop = if ch.qop && use_qop {
        Qop::Auth
    } else {
        Qop::None
    };
    let resp = digest::client_response(
        &ha1,
        method.as_bytes(),
        uri.as_bytes(),
        &ch.nonce,
        qop,
        nc_s.as_bytes(),
        cnonce.as_bytes(),
        Algorithm::Md5,
        b"",
    );
    let mut v = format!("Digest username=\"{user}\", realm=\"{realm}\", nonce=\"").into_bytes();
    v.extend_from_slice(&ch.nonce);
    v.extend_from_slice(format!("\", uri=\"{uri}\", response=\"").as_bytes());
    v.extend_from_slice(&resp);
    v.extend_from_slice(b"\", algorithm=MD5");
    if qop == Qop::Auth {
        v.extend_from_slice(format!(", qop=auth, nc={nc_s}, cnonce=\"{cnonce}\"").as_bytes());
    }
    v
}
