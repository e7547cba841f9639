//! SIP messages of the load generator: REGISTER requests (bare or answering a challenge),
//! challenges and responses read back.
//!
//! Layer: wire format, no I/O. Requests are written into caller-provided buffers (the send
//! ring's slots): a bare request allocates nothing, an answer to a challenge a few short
//! strings (the digest's `nc`, `cnonce` and `uri`); responses are read through sipgw's
//! checked view ([`sipgw::sip::Message`]) and the digest response is sipgw's
//! [`sipgw::digest::client_response`].
//!
//! Every request carries a Call-ID of the form `sb<a>.<b>.<c>.<d>@sipgw-bench` (four decimal
//! numbers the sender chooses, see [`TxnId`]), so a response is matched to the transaction
//! that sent it without a table lookup, and a `User-Agent: sipgw-bench/<class>` header that
//! the softswitch stand-in counts by.

use std::io::Write;
use std::net::SocketAddr;

use sipgw::digest::{self, Algorithm, Qop};

use crate::users::Ha1;
use sipgw::sip::{self, HeaderName, Message};

/// What a request is for; written after `sipgw-bench/` in its User-Agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// A legitimate registration.
    Register,
    /// A brute-force guess (or its challenge request).
    Bruteforce,
    /// Flood traffic.
    Flood,
}

impl Class {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Register => "register",
            Class::Bruteforce => "bruteforce",
            Class::Flood => "flood",
        }
    }

    /// The class named in a `User-Agent` value, if it is one of ours.
    pub fn from_user_agent(value: &[u8]) -> Option<Class> {
        let rest = value
            .trim_ascii()
            .strip_prefix(crate::USER_AGENT.as_bytes())?
            .strip_prefix(b"/")?;
        match rest {
            b"register" => Some(Class::Register),
            b"bruteforce" => Some(Class::Bruteforce),
            b"flood" => Some(Class::Flood),
            _ => None,
        }
    }
}

/// The transport a request travels over: written into its Via (`SIP/2.0/UDP`, `SIP/2.0/TCP`)
/// and, for TCP, as `;transport=tcp` in its Contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Datagrams (the default).
    #[default]
    Udp,
    /// A stream, messages framed by Content-Length (RFC 3261 §18.3).
    Tcp,
}

impl Transport {
    /// The Via protocol token.
    pub fn via(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// The Contact URI parameter (empty for UDP, the default of a `sip:` URI).
    pub fn contact_param(self) -> &'static str {
        match self {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        }
    }
}

/// The four numbers in a Call-ID of ours: who sent it (`a`: thread or flow group, `b`: slot or
/// flow) and which attempt (`c`), plus a free field (`d`, e.g. a run id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxnId {
    /// Sender group (thread).
    pub a: u32,
    /// Slot or flow within the group.
    pub b: u32,
    /// Attempt number of the slot.
    pub c: u32,
    /// Free field.
    pub d: u32,
}

impl TxnId {
    /// Parse a Call-ID value written by [`write_register`].
    pub fn parse(call_id: &[u8]) -> Option<TxnId> {
        let rest = call_id.trim_ascii().strip_prefix(b"sb")?;
        let end = rest.iter().position(|&b| b == b'@').unwrap_or(rest.len());
        let mut parts = rest[..end].split(|&b| b == b'.');
        let mut next = || -> Option<u32> { std::str::from_utf8(parts.next()?).ok()?.parse().ok() };
        let id = TxnId {
            a: next()?,
            b: next()?,
            c: next()?,
            d: next()?,
        };
        Some(id)
    }
}

/// The credentials line of a request answering a challenge.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// The challenge answered.
    pub challenge: &'a Challenge,
    /// HA1 used (the right one, or a guess).
    pub ha1: &'a Ha1,
    /// Nonce count (with qop).
    pub nc: u32,
    /// Client nonce (with qop).
    pub cnonce: u32,
}

/// A REGISTER to write.
#[derive(Debug, Clone, Copy)]
pub struct Register<'a> {
    /// Username (From, To, Contact, digest username).
    pub user: &'a str,
    /// The gateway: Request-URI host and digest `uri`.
    pub gateway: SocketAddr,
    /// Our address (Via, Contact).
    pub local: SocketAddr,
    /// Call-ID numbers.
    pub id: TxnId,
    /// CSeq number.
    pub cseq: u32,
    /// Registration lifetime.
    pub expires: u32,
    /// Traffic class (User-Agent).
    pub class: Class,
    /// Transport (Via and Contact).
    pub transport: Transport,
    /// Credentials answering a challenge, if any.
    pub answer: Option<Answer<'a>>,
}

/// The buffer was too small for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the message does not fit in the send buffer")]
pub struct TooLong;

/// Write a REGISTER into `buf`; returns its length.
pub fn write_register(buf: &mut [u8], r: &Register<'_>) -> Result<usize, TooLong> {
    let cap = buf.len();
    let mut w: &mut [u8] = buf;
    let TxnId { a, b, c, d } = r.id;
    let uri = RequestUri(r.gateway);
    let res = (|| -> std::io::Result<()> {
        write!(
            w,
            "REGISTER {uri} SIP/2.0\r\n\
             Via: SIP/2.0/{via} {local};branch=z9hG4bK-sb{a}.{b}.{c}.{d}-{cseq};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{host}>;tag=sb{a}.{b}.{c}\r\n\
             To: <sip:{user}@{host}>\r\n\
             Call-ID: sb{a}.{b}.{c}.{d}@sipgw-bench\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{local}{contact_param}>\r\n\
             Expires: {expires}\r\n\
             User-Agent: {ua}/{class}\r\n\
             Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, NOTIFY\r\n\
             Supported: path, replaces\r\n",
            local = r.local,
            via = r.transport.via(),
            contact_param = r.transport.contact_param(),
            cseq = r.cseq,
            user = r.user,
            host = r.gateway.ip(),
            expires = r.expires,
            ua = crate::USER_AGENT,
            class = r.class.as_str(),
        )?;
        if let Some(ans) = &r.answer {
            write_credentials(&mut w, r.user, &uri.to_string(), "REGISTER", ans)?;
        }
        w.write_all(b"Content-Length: 0\r\n\r\n")
    })();
    res.map_err(|_| TooLong)?;
    Ok(cap - w.len())
}

/// `sip:IP:port` (IPv6 in brackets) for the gateway.
struct RequestUri(SocketAddr);

impl std::fmt::Display for RequestUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sip:{}", self.0)
    }
}

fn write_credentials(
    w: &mut &mut [u8],
    user: &str,
    uri: &str,
    method: &str,
    ans: &Answer<'_>,
) -> std::io::Result<()> {
    let ch = ans.challenge;
    let nc = format!("{:08x}", ans.nc);
    let cnonce = format!("{:08x}", ans.cnonce);
    let qop = if ch.qop_auth { Qop::Auth } else { Qop::None };
    let response = digest::client_response(
        ans.ha1,
        method.as_bytes(),
        uri.as_bytes(),
        ch.nonce.as_bytes(),
        qop,
        nc.as_bytes(),
        cnonce.as_bytes(),
        Algorithm::Md5,
        b"",
    );
    let response = response.as_str();
    write!(
        w,
        "{}: Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=MD5",
        ch.answer_header.as_str(),
        ch.realm,
        ch.nonce
    )?;
    if ch.qop_auth {
        write!(w, ", qop=auth, nc={nc}, cnonce=\"{cnonce}\"")?;
    }
    if let Some(opaque) = &ch.opaque {
        write!(w, ", opaque=\"{opaque}\"")?;
    }
    w.write_all(b"\r\n")
}

/// A digest challenge (`WWW-Authenticate` or `Proxy-Authenticate`) from a 401/407.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Where the answer goes: `Authorization` (401) or `Proxy-Authorization` (407).
    pub answer_header: HeaderName,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `opaque`, echoed back if present.
    pub opaque: Option<String>,
    /// Whether `qop` offers `auth`.
    pub qop_auth: bool,
    /// `stale=true`.
    pub stale: bool,
}

impl Challenge {
    /// The first digest challenge of a response, if it has one.
    pub fn from_response(msg: &Message<'_>) -> Option<Challenge> {
        let (value, answer_header) = if let Some(v) = msg.header(HeaderName::WwwAuthenticate) {
            (v, HeaderName::Authorization)
        } else {
            (
                msg.header(HeaderName::ProxyAuthenticate)?,
                HeaderName::ProxyAuthorization,
            )
        };
        Self::parse(value, answer_header)
    }

    /// Parse a challenge header value (`Digest realm="…", nonce="…", …`).
    pub fn parse(value: &[u8], answer_header: HeaderName) -> Option<Challenge> {
        let v = value.trim_ascii();
        if v.len() < 7 || !v[..6].eq_ignore_ascii_case(b"Digest") {
            return None;
        }
        let mut ch = Challenge {
            answer_header,
            realm: String::new(),
            nonce: String::new(),
            opaque: None,
            qop_auth: false,
            stale: false,
        };
        let mut have_realm = false;
        for item in sip::split_list(&v[6..]) {
            let Some(eq) = item.iter().position(|&b| b == b'=') else {
                continue;
            };
            let name = item[..eq].trim_ascii();
            let raw = item[eq + 1..].trim_ascii();
            let val = raw
                .strip_prefix(b"\"")
                .and_then(|r| r.strip_suffix(b"\""))
                .unwrap_or(raw);
            let text = String::from_utf8_lossy(val).into_owned();
            if name.eq_ignore_ascii_case(b"realm") {
                ch.realm = text;
                have_realm = true;
            } else if name.eq_ignore_ascii_case(b"nonce") {
                ch.nonce = text;
            } else if name.eq_ignore_ascii_case(b"opaque") {
                ch.opaque = Some(text);
            } else if name.eq_ignore_ascii_case(b"qop") {
                ch.qop_auth = text.split(',').any(|q| q.trim() == "auth");
            } else if name.eq_ignore_ascii_case(b"stale") {
                ch.stale = text.eq_ignore_ascii_case("true");
            }
        }
        (have_realm && !ch.nonce.is_empty()).then_some(ch)
    }
}

/// What the generator needs from a response.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    /// The parsed message.
    pub msg: Message<'a>,
    /// Status code.
    pub status: u16,
    /// Our transaction numbers from the Call-ID (None: not one of ours).
    pub id: Option<TxnId>,
}

impl<'a> Response<'a> {
    /// Parse a datagram as a SIP response (None for requests and malformed datagrams).
    pub fn parse(bytes: &'a [u8]) -> Option<Response<'a>> {
        let msg = Message::parse(bytes).ok()?;
        let status = msg.status_code()?;
        let id = msg.header(HeaderName::CallId).and_then(TxnId::parse);
        Some(Response { msg, status, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_round_trip() {
        let mut buf = [0u8; 2048];
        let r = Register {
            user: "1001",
            gateway: "127.0.0.1:5060".parse().unwrap(),
            local: "127.0.0.1:40000".parse().unwrap(),
            id: TxnId {
                a: 3,
                b: 77,
                c: 12,
                d: 9,
            },
            cseq: 1,
            expires: 60,
            class: Class::Register,
            transport: Transport::Udp,
            answer: None,
        };
        let n = write_register(&mut buf, &r).unwrap();
        let msg = Message::parse(&buf[..n]).unwrap();
        assert_eq!(msg.method_bytes(), Some(&b"REGISTER"[..]));
        let id = TxnId::parse(msg.header(HeaderName::CallId).unwrap()).unwrap();
        assert_eq!(id, r.id);
        assert_eq!(
            Class::from_user_agent(msg.header(HeaderName::UserAgent).unwrap()),
            Some(Class::Register)
        );
        assert_eq!(write_register(&mut buf[..50], &r), Err(TooLong));
    }

    #[test]
    fn challenge_is_read_and_answered_with_a_digest_sipgw_verifies() {
        let ch = Challenge::parse(
            b"Digest realm=\"sipgw.test\", nonce=\"abc,def\", algorithm=MD5, qop=\"auth\"",
            HeaderName::ProxyAuthorization,
        )
        .unwrap();
        assert_eq!(ch.realm, "sipgw.test");
        assert_eq!(ch.nonce, "abc,def");
        assert!(ch.qop_auth && !ch.stale);
        let ha1 = digest::ha1(b"1001", b"sipgw.test", b"pw");
        let mut buf = [0u8; 2048];
        let r = Register {
            user: "1001",
            gateway: "127.0.0.1:5060".parse().unwrap(),
            local: "127.0.0.1:40000".parse().unwrap(),
            id: TxnId::default(),
            cseq: 2,
            expires: 60,
            class: Class::Register,
            transport: Transport::Udp,
            answer: Some(Answer {
                challenge: &ch,
                ha1: &ha1,
                nc: 1,
                cnonce: 0xabcd,
            }),
        };
        let n = write_register(&mut buf, &r).unwrap();
        let msg = Message::parse(&buf[..n]).unwrap();
        let value = msg.header(HeaderName::ProxyAuthorization).unwrap();
        let creds = digest::Credentials::parse(value).unwrap();
        let job = digest::Job {
            ha1: &ha1,
            method: b"REGISTER",
            credentials: &creds,
            body: b"",
        };
        assert!(digest::verify(&job));
    }
}
