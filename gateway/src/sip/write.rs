//! The one SIP message writer: every reply sipgw answers itself (challenges, 403, 400/420,
//! 483) and every message it forwards is written through [`Writer`].
//!
//! Layer: wire writing, sans-IO. A [`Writer`] writes into the caller's buffer and never
//! panics or allocates: output that does not fit the buffer, or grows beyond
//! [`MAX_MESSAGE_LEN`], is remembered and reported by [`Writer::finish`]; header lines written
//! with [`Writer::begin`], [`Writer::line`] or counted with [`Writer::count_header`] are
//! counted, and more than [`MAX_HEADERS`] of them is [`WriteError::TooLarge`] (what we send
//! must parse again with [`super::message::Message::parse`]).
#![forbid(unsafe_code)]

use core::fmt;
use std::net::{IpAddr, SocketAddr};

use super::message::{HeaderName, Message, MAX_HEADERS, MAX_MESSAGE_LEN};
use super::num::percent;
use super::tag::LocalTag;
use super::values::header_param;

/// Why [`Writer::finish`] refused the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// Longer than [`MAX_MESSAGE_LEN`], or more than [`MAX_HEADERS`] header lines.
    TooLarge,
    /// The caller's buffer is too small.
    BufferTooSmall,
}

/// Writes a message into the caller's buffer; see the module doc.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflow: bool,
    too_large: bool,
    headers: usize,
}

impl<'a> Writer<'a> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer {
            buf,
            len: 0,
            overflow: false,
            too_large: false,
            headers: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `bytes` (nothing once the output failed).
    pub fn put(&mut self, bytes: &[u8]) {
        if self.overflow || self.too_large {
            return;
        }
        let end = self.len.saturating_add(bytes.len());
        if end > MAX_MESSAGE_LEN {
            self.too_large = true;
            return;
        }
        match self.buf.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len = end;
            }
            None => self.overflow = true,
        }
    }

    /// Counts one header line written with [`Writer::put`].
    pub fn count_header(&mut self) {
        self.headers += 1;
    }

    /// Starts a header line: `name: ` (counted).
    pub fn begin(&mut self, name: &[u8]) {
        self.count_header();
        self.put(name);
        self.put(b": ");
    }

    /// A whole header line as written, and its line end (counted).
    pub fn line(&mut self, line: &[u8]) {
        self.count_header();
        self.put(line);
        self.put(b"\r\n");
    }

    /// `n` in decimal (without `core::fmt`: this is on every forwarded message).
    pub fn decimal(&mut self, n: u32) {
        let mut digits = [0u8; 10];
        let mut at = digits.len();
        let mut n = n;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.put(&digits[at..]);
    }

    /// An IP address as in a Via `received` or a URI host without brackets: dotted decimal,
    /// or RFC 5952 text for IPv6.
    pub fn ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(a) => {
                for (i, o) in a.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.put(b".");
                    }
                    self.decimal(u32::from(o));
                }
            }
            IpAddr::V6(a) => {
                use fmt::Write as _;
                let _ = write!(self, "{a}");
            }
        }
    }

    /// `host:port` of `addr`, an IPv6 address in brackets (RFC 3261 §25.1, RFC 5118).
    pub fn hostport(&mut self, addr: SocketAddr) {
        if addr.is_ipv6() {
            self.put(b"[");
            self.ip(addr.ip());
            self.put(b"]");
        } else {
            self.ip(addr.ip());
        }
        self.put(b":");
        self.decimal(u32::from(addr.port()));
    }

    /// `s` with every byte but alphanumerics and `-_.!~*'()&=+$` percent-encoded (the user
    /// part of a SIP URI, RFC 3261 §25.1).
    pub fn escaped(&mut self, s: &[u8]) {
        for &b in s {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$".contains(&b) {
                self.put(&[b]);
            } else {
                self.put(&percent(b));
            }
        }
    }

    /// The head of a response sipgw answers itself to `request` (RFC 3261 §8.2.6.2): the
    /// status line, then the request's Via, From, To, Call-ID and CSeq lines as written, with
    /// `tag`'s To-tag added when the To has none. The caller adds its headers and ends the
    /// message (e.g. with [`Writer::end_without_body`]).
    pub fn reply_head(&mut self, status_line: &[u8], request: &Message<'_>, tag: &LocalTag) {
        self.put(status_line);
        let to_has_tag = request
            .header(HeaderName::To)
            .is_some_and(|to| header_param(to, b"tag").is_some());
        let dialog = |n| {
            matches!(
                n,
                HeaderName::Via
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
            )
        };
        for (name, line) in request.lines_where(dialog) {
            self.count_header();
            self.put(line);
            if name == HeaderName::To && !to_has_tag {
                self.put(b";tag=");
                self.put(&tag.to_tag(request));
            }
            self.put(b"\r\n");
        }
    }

    /// `Content-Length: 0` and the end of the header section.
    pub fn end_without_body(&mut self) {
        self.count_header();
        self.put(b"Content-Length: 0\r\n\r\n");
    }

    /// The length written, or why the output cannot be sent.
    pub fn finish(self) -> Result<usize, WriteError> {
        if self.too_large || self.headers > MAX_HEADERS {
            Err(WriteError::TooLarge)
        } else if self.overflow {
            Err(WriteError::BufferTooSmall)
        } else {
            Ok(self.len)
        }
    }
}

impl fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_and_size_limits() {
        let mut small = [0u8; 4];
        let mut w = Writer::new(&mut small);
        w.put(b"abc");
        w.put(b"de");
        assert_eq!(w.finish(), Err(WriteError::BufferTooSmall));

        let mut big = vec![0u8; MAX_MESSAGE_LEN + 10];
        let mut w = Writer::new(&mut big);
        w.put(&[b'a'; MAX_MESSAGE_LEN]);
        assert_eq!(w.len(), MAX_MESSAGE_LEN);
        w.put(b"b");
        assert_eq!(w.finish(), Err(WriteError::TooLarge));

        let mut buf = [0u8; 2048];
        let mut w = Writer::new(&mut buf);
        for _ in 0..=MAX_HEADERS {
            w.line(b"X: y");
        }
        assert_eq!(w.finish(), Err(WriteError::TooLarge));
    }

    #[test]
    fn decimals_and_addresses_match_core_fmt() {
        use proptest::prelude::*;
        proptest!(|(n in any::<u32>(), v4 in any::<[u8; 4]>(), v6 in any::<[u16; 8]>(), port in any::<u16>())| {
            let mut buf = [0u8; 128];
            let mut w = Writer::new(&mut buf);
            w.decimal(n);
            let len = w.finish().unwrap();
            let want = n.to_string();
            prop_assert_eq!(&buf[..len], want.as_bytes());
            for addr in [
                SocketAddr::from((v4, port)),
                SocketAddr::from((std::net::Ipv6Addr::from(v6), port)),
            ] {
                let mut w = Writer::new(&mut buf);
                w.hostport(addr);
                let len = w.finish().unwrap();
                let want = addr.to_string();
                prop_assert_eq!(&buf[..len], want.as_bytes());
            }
        });
    }

    #[test]
    fn hostport_and_escaping() {
        let mut buf = [0u8; 128];
        let mut w = Writer::new(&mut buf);
        w.hostport("198.18.0.1:5060".parse().unwrap());
        w.put(b" ");
        w.hostport("[2001:2::1]:5061".parse().unwrap());
        w.put(b" ");
        w.escaped(b"a b@c;d-_.!~*'()&=+$");
        let len = w.finish().unwrap();
        assert_eq!(
            &buf[..len],
            b"198.18.0.1:5060 [2001:2::1]:5061 a%20b%40c%3bd-_.!~*'()&=+$"
        );
    }

    #[test]
    fn reply_head_copies_dialog_headers_and_tags_the_to() {
        let req = b"OPTIONS sip:h SIP/2.0\r\n\
            Via: SIP/2.0/UDP 198.18.0.2;branch=z9hG4bK1\r\n\
            v: SIP/2.0/UDP 198.18.0.3;branch=z9hG4bK2\r\n\
            Max-Forwards: 70\r\n\
            From: <sip:a@h>;tag=f\r\n\
            To: <sip:b@h>\r\n\
            Call-ID: c1\r\n\
            CSeq: 1 OPTIONS\r\n\
            Content-Length: 0\r\n\r\n";
        let msg = Message::parse(req).unwrap();
        let tag = LocalTag::new([7; 16]);
        let mut buf = [0u8; 512];
        let mut w = Writer::new(&mut buf);
        w.reply_head(b"SIP/2.0 403 Forbidden\r\n", &msg, &tag);
        w.end_without_body();
        let len = w.finish().unwrap();
        let reply = Message::parse(&buf[..len]).unwrap();
        assert_eq!(reply.status_code(), Some(403));
        assert_eq!(reply.via_values().count(), 2);
        assert!(reply.header(HeaderName::MaxForwards).is_none());
        let to = reply.header(HeaderName::To).unwrap();
        assert_eq!(header_param(to, b"tag"), Some(&tag.to_tag(&msg)[..]));
        assert_eq!(reply.header_count(), 7);
    }
}
