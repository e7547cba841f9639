//! Our To-tag for the responses sipgw answers itself (challenges, 4xx/5xx, 483): a keyed hash of
//! the request's Call-ID and From-tag, so the ACK for a non-2xx reply is recognised without
//! state (RFC 3261 §17.2.1: that ACK carries our To-tag).

use siphasher::sip::SipHasher13;
use std::hash::Hasher;

use super::message::{HeaderName, Message};
use super::values::{header_param, trim_lws};

/// The key our To-tags are derived with (one per engine and proxy; unknown to clients).
#[derive(Clone)]
pub struct LocalTag {
    key: [u8; 16],
}

impl std::fmt::Debug for LocalTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalTag(..)")
    }
}

impl LocalTag {
    /// Tags derived with `key`.
    pub fn new(key: [u8; 16]) -> LocalTag {
        LocalTag { key }
    }

    /// The To-tag for a response to `msg`: 16 lowercase hex digits.
    pub fn to_tag(&self, msg: &Message<'_>) -> [u8; 16] {
        let mut h = SipHasher13::new_with_key(&self.key);
        let call_id = trim_lws(msg.header(HeaderName::CallId).unwrap_or_default());
        h.write_usize(call_id.len());
        h.write(call_id);
        let from_tag = msg
            .header(HeaderName::From)
            .and_then(|f| header_param(f, b"tag"))
            .unwrap_or_default();
        h.write(from_tag);
        let mut out = [0u8; 16];
        super::num::put_hex(&mut out, &h.finish().to_be_bytes());
        out
    }

    /// Whether `msg` (an ACK) carries the To-tag we gave the response it acknowledges.
    pub fn is_own_ack(&self, msg: &Message<'_>) -> bool {
        msg.header(HeaderName::To)
            .and_then(|t| header_param(t, b"tag"))
            .is_some_and(|tag| tag == self.to_tag(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &[u8]) -> Message<'_> {
        Message::parse(text).expect("test message parses")
    }

    #[test]
    fn the_ack_for_our_reply_is_recognised_and_others_are_not() {
        let tag = LocalTag::new([7; 16]);
        let req = msg(b"INVITE sip:a@198.18.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.18.0.2;branch=z9hG4bK1\r\nFrom: <sip:b@x>;tag=f1\r\nTo: <sip:a@x>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
        let t = tag.to_tag(&req);
        assert!(t.iter().all(|b| b.is_ascii_hexdigit()));
        let ack = |to_tag: &[u8], call_id: &str| {
            let mut v = b"ACK sip:a@198.18.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.18.0.2;branch=z9hG4bK1\r\nFrom: <sip:b@x>;tag=f1\r\nTo: <sip:a@x>;tag=".to_vec();
            v.extend_from_slice(to_tag);
            v.extend_from_slice(format!("\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").as_bytes());
            v
        };
        let own = ack(&t, "c1");
        assert!(tag.is_own_ack(&msg(&own)));
        let other_call = ack(&t, "c2");
        assert!(!tag.is_own_ack(&msg(&other_call)));
        let forged = ack(b"0000000000000000", "c1");
        assert!(!tag.is_own_ack(&msg(&forged)));
        assert!(!LocalTag::new([8; 16]).is_own_ack(&msg(&own)));
    }
}
