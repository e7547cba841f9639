//! The replies the engine answers itself: challenges (401/407), `403 Forbidden`, and
//! `400`/`420` for a request that failed [`crate::validate`], each written with the one SIP
//! writer ([`crate::sip::write::Writer`]) and bounded against amplification.
//!
//! Layer: protocol core, sans-IO. [`Replies`] holds what the replies depend on from the
//! configuration (realm, challenge mode, qop, `reply_unauthorized`, the amplification limit)
//! and the To-tag key; the engine mints the nonce and decides *which* reply, this module
//! writes it and counts it.
#![forbid(unsafe_code)]

use crate::config::{AuthConfig, ChallengeMode, Limits, QopMode};
use crate::counters::Counters;
use crate::digest::{Algorithm, Hash};
use crate::sip::tag::LocalTag;
use crate::sip::write::{WriteError, Writer};
use crate::sip::{self, Message, Method};
use crate::validate;

use super::verdict::{DropReason, Verdict, MAX_REPLY_GROWTH};

/// What the engine's replies look like; see the module doc.
#[derive(Debug, Clone)]
pub(crate) struct Replies {
    /// `auth.realm`, as it goes into challenges and is compared with credentials.
    pub(crate) realm: Box<[u8]>,
    mode: ChallengeMode,
    qop: QopMode,
    /// `auth.reply_unauthorized`: when off, nothing but challenges is answered, and
    /// unknown users are not challenged either.
    pub(crate) reply_unauthorized: bool,
    amplification_milli: u32,
    tag: LocalTag,
    /// `auth.algorithms`, in order: one challenge header each.
    algorithms: Vec<Algorithm>,
}

impl Replies {
    /// Replies by `auth` and `limits`, To-tags derived with `tag_key`.
    pub(crate) fn new(auth: &AuthConfig, limits: &Limits, tag_key: [u8; 16]) -> Replies {
        let mut r = Replies {
            realm: Box::default(),
            mode: auth.challenge_mode,
            qop: auth.qop,
            reply_unauthorized: auth.reply_unauthorized,
            amplification_milli: 0,
            tag: LocalTag::new(tag_key),
            algorithms: Vec::new(),
        };
        r.reconfigure(auth, limits);
        r
    }

    /// Takes a reloaded configuration's values (the To-tag key stays).
    pub(crate) fn reconfigure(&mut self, auth: &AuthConfig, limits: &Limits) {
        self.realm = auth.realm.as_bytes().into();
        self.mode = auth.challenge_mode;
        self.qop = auth.qop;
        self.reply_unauthorized = auth.reply_unauthorized;
        self.amplification_milli = limits.amplification_limit_milli;
        self.algorithms.clone_from(&auth.algorithms);
    }

    /// Whether one of the offered algorithms uses `hash` (credentials with it are verified).
    pub(crate) fn offers(&self, hash: Hash) -> bool {
        self.algorithms.iter().any(|a| a.hash() == hash)
    }

    /// Whether `msg` (an ACK) acknowledges one of our replies: it ends here.
    pub(crate) fn is_own_ack(&self, msg: &Message<'_>) -> bool {
        self.tag.is_own_ack(msg)
    }

    /// The challenge status for `method`: 401 or 407 (`auth.challenge_mode`).
    pub(crate) fn challenge_status(&self, method: Method) -> u16 {
        if self.mode.uses_401(method) {
            401
        } else {
            407
        }
    }

    /// A challenge for `msg` carrying `nonce` (with `stale=true` when `stale`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn challenge(
        &self,
        counters: &mut Counters,
        proven: bool,
        msg: &Message<'_>,
        method: Method,
        nonce: &[u8],
        stale: bool,
        reply: &mut [u8],
    ) -> Verdict {
        let status = self.challenge_status(method);
        let (line, header): (&[u8], &[u8]) = if status == 401 {
            (b"SIP/2.0 401 Unauthorized\r\n", b"WWW-Authenticate")
        } else {
            (
                b"SIP/2.0 407 Proxy Authentication Required\r\n",
                b"Proxy-Authenticate",
            )
        };
        // One header per offered algorithm, in the configured order (RFC 8760 §2.4). A
        // challenge to a source that has proven nothing must stay within the amplification
        // bound: if all of them do not fit, the longest prefix of the list that fits is
        // offered (at least the first algorithm, which the bound then judges alone).
        let mut offered = self.algorithms.len().max(1);
        loop {
            let mut w = Writer::new(&mut *reply);
            w.reply_head(line, msg, &self.tag);
            for alg in self.algorithms.iter().take(offered) {
                w.begin(header);
                w.put(b"Digest realm=\"");
                w.put(&self.realm);
                w.put(b"\",nonce=\"");
                w.put(nonce);
                w.put(b"\"");
                // `algorithm` is omitted when MD5 is all we offer: it is the default (RFC
                // 2617 §3.2.1), and every byte of a challenge counts against the
                // amplification limit.
                if self.algorithms != [Algorithm::Md5] {
                    w.put(b",algorithm=");
                    w.put(alg.as_str().as_bytes());
                }
                if self.qop == QopMode::Auth {
                    w.put(b",qop=\"auth\"");
                }
                if stale {
                    w.put(b",stale=true");
                }
                w.put(b"\r\n");
            }
            w.end_without_body();
            let len = w.finish();
            if offered > 1 && matches!(len, Ok(n) if !proven && self.amplified(n, msg)) {
                offered -= 1;
                continue;
            }
            counters.challenged += 1;
            return self.judge(counters, proven, len, msg, status);
        }
    }

    /// `403 Forbidden` (or a silent drop when replies are off).
    pub(crate) fn forbid(
        &self,
        counters: &mut Counters,
        proven: bool,
        msg: &Message<'_>,
        reply: &mut [u8],
    ) -> Verdict {
        if !self.reply_unauthorized {
            counters.silenced += 1;
            return Verdict::Drop(DropReason::Silenced { status: 403 });
        }
        let mut w = Writer::new(reply);
        w.reply_head(b"SIP/2.0 403 Forbidden\r\n", msg, &self.tag);
        w.end_without_body();
        counters.forbidden_sent += 1;
        self.emit(counters, proven, w, msg, 403)
    }

    /// A message that failed [`validate`]: counted by reason; a request (not an ACK) is
    /// answered `400 <reason>` (or `420 Bad Extension` with `Unsupported`) unless replies are
    /// off; an ACK or a response is dropped.
    pub(crate) fn reject_invalid(
        &self,
        counters: &mut Counters,
        proven: bool,
        msg: &Message<'_>,
        invalid: validate::Invalid,
        reply: &mut [u8],
    ) -> Verdict {
        invalid.count(counters);
        if invalid == validate::Invalid::MissingHeaders {
            return Verdict::Drop(DropReason::MissingHeaders);
        }
        if !msg.is_request() || msg.method() == Some(Method::Ack) {
            return Verdict::Drop(DropReason::Invalid(invalid));
        }
        if !self.reply_unauthorized {
            counters.silenced += 1;
            return Verdict::Drop(DropReason::Silenced {
                status: invalid.status(),
            });
        }
        let mut w = Writer::new(reply);
        w.reply_head(invalid.status_line(), msg, &self.tag);
        if invalid == validate::Invalid::BadExtension {
            w.begin(b"Unsupported");
            let options = validate::proxy_require_values(msg).flat_map(sip::split_list);
            for (i, option) in options.enumerate() {
                if i > 0 {
                    w.put(b", ");
                }
                w.put(option);
            }
            w.put(b"\r\n");
        }
        w.end_without_body();
        self.emit(counters, proven, w, msg, invalid.status())
    }

    /// The reply in `w`, unless it is too large: never more than [`MAX_REPLY_GROWTH`] bytes
    /// above the request, and, for a source that has not proved a round trip (`proven`: it
    /// echoed a nonce we minted for its address, or came over a connection), never more than
    /// `limits.amplification_limit` times the request (dropped and counted in
    /// `amplification_dropped` instead: a spoofed request must not turn sipgw into an
    /// amplifier).
    fn emit(
        &self,
        counters: &mut Counters,
        proven: bool,
        w: Writer<'_>,
        msg: &Message<'_>,
        status: u16,
    ) -> Verdict {
        self.judge(counters, proven, w.finish(), msg, status)
    }

    /// Whether a reply of `len` bytes to `msg` exceeds the amplification bound.
    fn amplified(&self, len: usize, msg: &Message<'_>) -> bool {
        len as u64 * 1000 > msg.as_bytes().len() as u64 * u64::from(self.amplification_milli)
    }

    /// The verdict on a finished reply: sent, or dropped (and counted) for its size.
    fn judge(
        &self,
        counters: &mut Counters,
        proven: bool,
        len: Result<usize, WriteError>,
        msg: &Message<'_>,
        status: u16,
    ) -> Verdict {
        let request = msg.as_bytes().len();
        match len {
            Err(WriteError::BufferTooSmall) => {
                counters.reply_buffer_too_small += 1;
                Verdict::Drop(DropReason::ReplyBufferTooSmall)
            }
            Err(WriteError::TooLarge) => {
                counters.reply_too_large += 1;
                Verdict::Drop(DropReason::ReplyTooLarge)
            }
            Ok(len) if len > request + MAX_REPLY_GROWTH => {
                counters.reply_too_large += 1;
                Verdict::Drop(DropReason::ReplyTooLarge)
            }
            Ok(len) if !proven && self.amplified(len, msg) => {
                counters.amplification_dropped += 1;
                Verdict::Drop(DropReason::Amplification)
            }
            Ok(len) => Verdict::Reply { len, status },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::sip::HeaderName;

    const OPTIONS: &[u8] = b"OPTIONS sip:198.18.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bK77\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:alice@example.test>;tag=a1\r\n\
        To: <sip:alice@example.test>\r\n\
        Call-ID: reply-test-1\r\n\
        CSeq: 1 OPTIONS\r\n\
        Content-Length: 0\r\n\r\n";

    fn replies(edit: impl FnOnce(&mut Config)) -> Replies {
        let mut config = Config::default();
        config.auth.realm = "example.test".into();
        edit(&mut config);
        Replies::new(&config.auth, &config.limits, [3; 16])
    }

    fn reply_of(buf: &[u8], v: Verdict) -> Message<'_> {
        let Verdict::Reply { len, .. } = v else {
            panic!("not a reply: {v:?}");
        };
        Message::parse(&buf[..len]).unwrap()
    }

    #[test]
    fn challenge_by_mode_with_qop_and_stale() {
        let msg = Message::parse(OPTIONS).unwrap();
        let mut c = Counters::default();
        let mut buf = [0u8; 1024];
        let r = replies(|c| c.auth.challenge_mode = ChallengeMode::Proxy);
        let v = r.challenge(
            &mut c,
            true,
            &msg,
            Method::Options,
            b"n0nce",
            true,
            &mut buf,
        );
        assert!(matches!(v, Verdict::Reply { status: 407, .. }));
        let reply = reply_of(&buf, v);
        let h = reply.header(HeaderName::ProxyAuthenticate).unwrap();
        assert_eq!(
            h,
            b"Digest realm=\"example.test\",nonce=\"n0nce\",qop=\"auth\",stale=true"
        );
        assert_eq!(c.challenged, 1);
        // The ACK for it carries our To-tag and is recognised as ours.
        let to = reply.header(HeaderName::To).unwrap();
        let tag = sip::header_param(to, b"tag").unwrap();
        let ack = String::from_utf8(OPTIONS.to_vec())
            .unwrap()
            .replace("OPTIONS sip", "ACK sip")
            .replace("1 OPTIONS", "1 ACK")
            .replace(
                "To: <sip:alice@example.test>",
                &format!(
                    "To: <sip:alice@example.test>;tag={}",
                    std::str::from_utf8(tag).unwrap()
                ),
            );
        assert!(r.is_own_ack(&Message::parse(ack.as_bytes()).unwrap()));

        let r = replies(|c| {
            c.auth.challenge_mode = ChallengeMode::Www;
            c.auth.qop = QopMode::None;
        });
        let v = r.challenge(&mut c, true, &msg, Method::Options, b"n1", false, &mut buf);
        let reply = reply_of(&buf, v);
        assert_eq!(reply.status_code(), Some(401));
        assert_eq!(
            reply.header(HeaderName::WwwAuthenticate).unwrap(),
            b"Digest realm=\"example.test\",nonce=\"n1\""
        );
    }

    #[test]
    fn amplification_bound_until_a_round_trip() {
        let msg = Message::parse(OPTIONS).unwrap();
        let mut c = Counters::default();
        let mut buf = [0u8; 1024];
        // 1.0 × the request: a challenge is longer than this OPTIONS.
        let r = replies(|c| c.limits.amplification_limit_milli = 1000);
        let v = r.challenge(&mut c, false, &msg, Method::Options, b"n", false, &mut buf);
        assert_eq!(v, Verdict::Drop(DropReason::Amplification));
        assert_eq!(c.amplification_dropped, 1);
        let v = r.challenge(&mut c, true, &msg, Method::Options, b"n", false, &mut buf);
        assert!(matches!(
            v,
            Verdict::Reply {
                status: 407 | 401,
                ..
            }
        ));
        // A buffer too small is its own reason.
        let v = r.forbid(&mut c, true, &msg, &mut buf[..40]);
        assert_eq!(v, Verdict::Drop(DropReason::ReplyBufferTooSmall));
        assert_eq!(c.reply_buffer_too_small, 1);
    }

    #[test]
    fn silenced_when_replies_are_off() {
        let msg = Message::parse(OPTIONS).unwrap();
        let mut c = Counters::default();
        let mut buf = [0u8; 1024];
        let r = replies(|c| c.auth.reply_unauthorized = false);
        let v = r.forbid(&mut c, true, &msg, &mut buf);
        assert_eq!(v, Verdict::Drop(DropReason::Silenced { status: 403 }));
        let v = r.reject_invalid(
            &mut c,
            true,
            &msg,
            validate::Invalid::BadExtension,
            &mut buf,
        );
        assert_eq!(v, Verdict::Drop(DropReason::Silenced { status: 420 }));
        assert_eq!(c.silenced, 2);
        let r = replies(|_| {});
        let v = r.forbid(&mut c, true, &msg, &mut buf);
        assert_eq!(reply_of(&buf, v).status_code(), Some(403));
        assert_eq!(c.forbidden_sent, 1);
    }
}
