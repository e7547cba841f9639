//! Zero-copy, checked view of one SIP message (RFC 3261).
//!
//! Layer: wire parsing, sans-IO. This module never touches a socket, a clock
//! or the heap: it takes the bytes of one datagram (or one framed stream
//! message) and hands back a [`Message`] that borrows them.
//!
//! # Invariants
//!
//! * A [`Message`] only exists after [`Message::parse`] has checked the whole
//!   start line and header section. It stores the input slice plus offsets
//!   (`u16`, as the input is at most [`MAX_MESSAGE_LEN`] bytes) in a
//!   fixed-capacity table of at most [`MAX_HEADERS`] entries; nothing is copied
//!   and nothing is allocated.
//! * Every header's [`HeaderName`] is resolved once, while parsing, so lookups
//!   are a scan over a small table of one-byte tags.
//! * The start line and header section contain no control characters other
//!   than HT and the CR LF / bare LF line structure; the body may contain
//!   anything.
//! * If `Content-Length` (or its compact form `l`) is present, every
//!   occurrence agrees, is plain decimal that fits in `u32`, and the body is
//!   exactly that many bytes (extra datagram bytes are ignored, RFC 3261
//!   §18.3). If absent, the body is the rest of the buffer.
//!
//! # No-panic contract
//!
//! `Message::parse` accepts any byte slice and returns either a checked view
//! or a typed `ParseError`; after the check no accessor can panic or read out
//! of bounds. Accessors slice through `get`, never through indexing, so the
//! contract holds even if an offset were ever wrong. The free helpers
//! ([`name_addr_uri`], [`uri_user`], [`header_param`], [`cseq`],
//! [`split_list`]) accept any byte slice as well and return `None` rather than
//! panic. Every slice handed out borrows from the input.
//!
//! # Leniency
//!
//! Bare LF line endings and obs-fold continuation lines are accepted, and so
//! are CR/LF bytes before the start line (RFC 3261 §7.5, and the CRLF
//! keep-alives of RFC 5626): a buffer of only CR/LF bytes is
//! [`ParseError::Empty`].
#![forbid(unsafe_code)]

use core::fmt;

use memchr::{memchr, memchr_iter};

/// Most headers a [`Message`] can hold; one more is [`ParseError::TooManyHeaders`].
pub const MAX_HEADERS: usize = 64;

/// Largest accepted message in bytes (the largest UDP payload); a longer
/// buffer is [`ParseError::TooLarge`].
pub const MAX_MESSAGE_LEN: usize = 65535;

/// The only protocol version accepted (compared case-insensitively).
pub const SIP_VERSION: &[u8] = b"SIP/2.0";

/// Lowest status code accepted in a status line.
pub const MIN_STATUS_CODE: u16 = 100;

/// Highest status code accepted in a status line.
pub const MAX_STATUS_CODE: u16 = 699;

// Offsets are stored as `u16`; that is only sound while every offset fits.
const _: () = assert!(MAX_MESSAGE_LEN <= u16::MAX as usize);
// The header count is stored as `u8`.
const _: () = assert!(MAX_HEADERS <= u8::MAX as usize);

/// Why a buffer is not a SIP message this module accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The buffer is empty or holds nothing but CR/LF bytes (a keep-alive).
    #[error("empty message")]
    Empty,
    /// The buffer is longer than [`MAX_MESSAGE_LEN`] bytes.
    #[error("message longer than {MAX_MESSAGE_LEN} bytes")]
    TooLarge,
    /// The start line is not `METHOD SP URI SP VERSION` nor
    /// `VERSION SP CODE [SP reason]` (missing or extra parts).
    #[error("malformed start line")]
    StartLine,
    /// The request method is not an RFC 3261 token.
    #[error("request method is not a token")]
    Method,
    /// The Request-URI is empty, has no `scheme:` prefix or contains whitespace.
    #[error("malformed Request-URI")]
    RequestUri,
    /// The protocol version is not `SIP/2.0`.
    #[error("unsupported SIP version")]
    Version,
    /// The status code is not three digits in `100..=699`.
    #[error("invalid status code")]
    StatusCode,
    /// A control character (other than HT and the CR LF line structure) is in
    /// the start line or the header section; a lone CR counts as one.
    #[error("control character in start line or headers")]
    ControlChar,
    /// The header section is not terminated by an empty line.
    #[error("header section not terminated by an empty line")]
    NoHeaderEnd,
    /// A header line has no `:` separator.
    #[error("header line without ':'")]
    HeaderSyntax,
    /// A header name is empty or not an RFC 3261 token (e.g. contains a space).
    #[error("invalid header name")]
    HeaderName,
    /// A continuation line (starting with SP/HT) comes before any header.
    #[error("continuation line before any header")]
    UnexpectedContinuation,
    /// The message has more than [`MAX_HEADERS`] headers.
    #[error("more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    /// A `Content-Length` value is not plain decimal digits fitting in `u32`.
    #[error("invalid Content-Length")]
    ContentLength,
    /// Several `Content-Length` headers carry different values.
    #[error("conflicting Content-Length headers")]
    ConflictingContentLength,
    /// `Content-Length` is larger than the bytes after the header section.
    #[error("body shorter than Content-Length")]
    BodyTruncated,
}

/// A SIP request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `REGISTER` (RFC 3261).
    Register,
    /// `INVITE` (RFC 3261).
    Invite,
    /// `ACK` (RFC 3261).
    Ack,
    /// `CANCEL` (RFC 3261).
    Cancel,
    /// `BYE` (RFC 3261).
    Bye,
    /// `OPTIONS` (RFC 3261).
    Options,
    /// `SUBSCRIBE` (RFC 6665).
    Subscribe,
    /// `NOTIFY` (RFC 6665).
    Notify,
    /// `REFER` (RFC 3515).
    Refer,
    /// `MESSAGE` (RFC 3428).
    Message,
    /// `INFO` (RFC 6086).
    Info,
    /// `PRACK` (RFC 3262).
    Prack,
    /// `UPDATE` (RFC 3311).
    Update,
    /// `PUBLISH` (RFC 3903).
    Publish,
    /// Any other method token (see [`Message::method_bytes`] for its spelling).
    Other,
}

impl Method {
    /// Resolves a method token. Case-sensitive, as methods are case-sensitive
    /// tokens in RFC 3261 (`invite` is [`Method::Other`]).
    pub fn from_bytes(b: &[u8]) -> Method {
        match b {
            b"REGISTER" => Method::Register,
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"CANCEL" => Method::Cancel,
            b"BYE" => Method::Bye,
            b"OPTIONS" => Method::Options,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"INFO" => Method::Info,
            b"PRACK" => Method::Prack,
            b"UPDATE" => Method::Update,
            b"PUBLISH" => Method::Publish,
            _ => Method::Other,
        }
    }

    /// The method's token, or `"OTHER"` for [`Method::Other`].
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Register => "REGISTER",
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Cancel => "CANCEL",
            Method::Bye => "BYE",
            Method::Options => "OPTIONS",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Publish => "PUBLISH",
            Method::Other => "OTHER",
        }
    }
}

/// A header name this module knows; everything else is [`HeaderName::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderName {
    /// `Via` (compact `v`).
    Via,
    /// `From` (compact `f`).
    From,
    /// `To` (compact `t`).
    To,
    /// `Call-ID` (compact `i`).
    CallId,
    /// `CSeq`.
    CSeq,
    /// `Contact` (compact `m`).
    Contact,
    /// `Content-Length` (compact `l`).
    ContentLength,
    /// `Content-Type` (compact `c`).
    ContentType,
    /// `Content-Encoding` (compact `e`).
    ContentEncoding,
    /// `Max-Forwards`.
    MaxForwards,
    /// `Authorization`.
    Authorization,
    /// `Proxy-Authorization`.
    ProxyAuthorization,
    /// `WWW-Authenticate`.
    WwwAuthenticate,
    /// `Proxy-Authenticate`.
    ProxyAuthenticate,
    /// `Route`.
    Route,
    /// `Record-Route`.
    RecordRoute,
    /// `Path` (RFC 3327).
    Path,
    /// `Expires`.
    Expires,
    /// `Supported` (compact `k`).
    Supported,
    /// `Subject` (compact `s`).
    Subject,
    /// `Event` (compact `o`, RFC 6665).
    Event,
    /// `Allow-Events` (compact `u`, RFC 6665).
    AllowEvents,
    /// `Refer-To` (compact `r`, RFC 3515).
    ReferTo,
    /// `Referred-By` (compact `b`, RFC 3892).
    ReferredBy,
    /// `Session-Expires` (compact `x`, RFC 4028).
    SessionExpires,
    /// `Allow`.
    Allow,
    /// `User-Agent`.
    UserAgent,
    /// Any other header; compare [`Header::raw_name`] to tell them apart.
    Other,
}

impl HeaderName {
    /// Case-insensitive; understands the RFC 3261 §7.3.3 / IANA compact forms:
    /// v=Via f=From t=To i=Call-ID m=Contact l=Content-Length k=Supported s=Subject c=Content-Type
    /// e=Content-Encoding o=Event u=Allow-Events r=Refer-To b=Referred-By x=Session-Expires
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        if let [c] = name {
            return match c.to_ascii_lowercase() {
                b'v' => HeaderName::Via,
                b'f' => HeaderName::From,
                b't' => HeaderName::To,
                b'i' => HeaderName::CallId,
                b'm' => HeaderName::Contact,
                b'l' => HeaderName::ContentLength,
                b'k' => HeaderName::Supported,
                b's' => HeaderName::Subject,
                b'c' => HeaderName::ContentType,
                b'e' => HeaderName::ContentEncoding,
                b'o' => HeaderName::Event,
                b'u' => HeaderName::AllowEvents,
                b'r' => HeaderName::ReferTo,
                b'b' => HeaderName::ReferredBy,
                b'x' => HeaderName::SessionExpires,
                _ => HeaderName::Other,
            };
        }
        // Pick the one candidate by length and first letter, then compare.
        let Some(first) = name.first() else {
            return HeaderName::Other;
        };
        let second = name.get(1).map_or(0, u8::to_ascii_lowercase);
        let candidate = match (name.len(), first.to_ascii_lowercase()) {
            (3, b'v') => HeaderName::Via,
            (4, b'f') => HeaderName::From,
            (2, b't') => HeaderName::To,
            (7, b'c') if second == b'a' => HeaderName::CallId,
            (7, b'c') => HeaderName::Contact,
            (4, b'c') => HeaderName::CSeq,
            (14, b'c') => HeaderName::ContentLength,
            (12, b'c') => HeaderName::ContentType,
            (16, b'c') => HeaderName::ContentEncoding,
            (12, b'm') => HeaderName::MaxForwards,
            (13, b'a') => HeaderName::Authorization,
            (19, b'p') => HeaderName::ProxyAuthorization,
            (16, b'w') => HeaderName::WwwAuthenticate,
            (18, b'p') => HeaderName::ProxyAuthenticate,
            (5, b'r') => HeaderName::Route,
            (12, b'r') => HeaderName::RecordRoute,
            (4, b'p') => HeaderName::Path,
            (7, b'e') => HeaderName::Expires,
            (9, b's') => HeaderName::Supported,
            (7, b's') => HeaderName::Subject,
            (5, b'e') => HeaderName::Event,
            (12, b'a') => HeaderName::AllowEvents,
            (8, b'r') => HeaderName::ReferTo,
            (11, b'r') => HeaderName::ReferredBy,
            (15, b's') => HeaderName::SessionExpires,
            (5, b'a') => HeaderName::Allow,
            (10, b'u') => HeaderName::UserAgent,
            _ => return HeaderName::Other,
        };
        match PACKED_NAMES.get(candidate as usize) {
            Some(packed) if packed.matches(name) => candidate,
            _ => HeaderName::Other,
        }
    }

    /// Canonical long form, e.g. `"Call-ID"`, `"CSeq"`, `"WWW-Authenticate"`;
    /// `""` for [`HeaderName::Other`].
    pub const fn as_str(&self) -> &'static str {
        match self {
            HeaderName::Via => "Via",
            HeaderName::From => "From",
            HeaderName::To => "To",
            HeaderName::CallId => "Call-ID",
            HeaderName::CSeq => "CSeq",
            HeaderName::Contact => "Contact",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::ContentEncoding => "Content-Encoding",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::Authorization => "Authorization",
            HeaderName::ProxyAuthorization => "Proxy-Authorization",
            HeaderName::WwwAuthenticate => "WWW-Authenticate",
            HeaderName::ProxyAuthenticate => "Proxy-Authenticate",
            HeaderName::Route => "Route",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::Path => "Path",
            HeaderName::Expires => "Expires",
            HeaderName::Supported => "Supported",
            HeaderName::Subject => "Subject",
            HeaderName::Event => "Event",
            HeaderName::AllowEvents => "Allow-Events",
            HeaderName::ReferTo => "Refer-To",
            HeaderName::ReferredBy => "Referred-By",
            HeaderName::SessionExpires => "Session-Expires",
            HeaderName::Allow => "Allow",
            HeaderName::UserAgent => "User-Agent",
            HeaderName::Other => "",
        }
    }
}

/// Every known header name, in declaration order (so `ALL_NAMES[n as usize] == n`).
const ALL_NAMES: [HeaderName; 27] = [
    HeaderName::Via,
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
    HeaderName::Contact,
    HeaderName::ContentLength,
    HeaderName::ContentType,
    HeaderName::ContentEncoding,
    HeaderName::MaxForwards,
    HeaderName::Authorization,
    HeaderName::ProxyAuthorization,
    HeaderName::WwwAuthenticate,
    HeaderName::ProxyAuthenticate,
    HeaderName::Route,
    HeaderName::RecordRoute,
    HeaderName::Path,
    HeaderName::Expires,
    HeaderName::Supported,
    HeaderName::Subject,
    HeaderName::Event,
    HeaderName::AllowEvents,
    HeaderName::ReferTo,
    HeaderName::ReferredBy,
    HeaderName::SessionExpires,
    HeaderName::Allow,
    HeaderName::UserAgent,
];

/// Bytes a packed name occupies (the longest name has 19).
const PACKED_NAME_LEN: usize = 24;

/// A long-form name packed for branch-free case-insensitive comparison:
/// `lower` is the lower-cased name zero-padded to [`PACKED_NAME_LEN`] bytes,
/// `fold` has `0x20` at each letter position, so a byte `b` matches iff
/// `b | fold == lower` (either case of a letter matches; `-` must be exact).
/// The caller has already checked that the lengths agree.
#[derive(Clone, Copy)]
struct PackedName {
    lower: [u8; PACKED_NAME_LEN],
    fold: [u8; PACKED_NAME_LEN],
}

impl PackedName {
    /// Case-insensitive comparison of `name` (2 to [`PACKED_NAME_LEN`]
    /// bytes, the length of this name) by two overlapping word loads, or
    /// three for names longer than 16 bytes.
    fn matches(&self, name: &[u8]) -> bool {
        let n = name.len();
        if n >= 8 {
            let diff = |at: usize| {
                (load::<8>(name, at) | load::<8>(&self.fold, at)) ^ load::<8>(&self.lower, at)
            };
            let middle = if n > 16 { diff(8) } else { 0 };
            (diff(0) | diff(n - 8) | middle) == 0
        } else if n >= 4 {
            let diff = |at: usize| {
                (load::<4>(name, at) | load::<4>(&self.fold, at)) ^ load::<4>(&self.lower, at)
            };
            (diff(0) | diff(n - 4)) == 0
        } else if n >= 2 {
            let diff = |at: usize| {
                (load::<2>(name, at) | load::<2>(&self.fold, at)) ^ load::<2>(&self.lower, at)
            };
            (diff(0) | diff(n - 2)) == 0
        } else {
            false
        }
    }
}

/// `N` (at most 8) little-endian bytes of `s` at `at` as an integer;
/// `u64::MAX` if out of range, which never equals a packed name word.
fn load<const N: usize>(s: &[u8], at: usize) -> u64 {
    let Some(bytes) = s.get(at..at + N) else {
        return u64::MAX;
    };
    let mut word = [0u8; 8];
    if let Some(low) = word.get_mut(..N) {
        low.copy_from_slice(bytes);
    }
    u64::from_le_bytes(word)
}

/// [`PackedName`]s of [`ALL_NAMES`], indexed by `HeaderName as usize`.
const PACKED_NAMES: [PackedName; ALL_NAMES.len()] = {
    let empty = PackedName {
        lower: [0; PACKED_NAME_LEN],
        fold: [0; PACKED_NAME_LEN],
    };
    let mut table = [empty; ALL_NAMES.len()];
    let mut n = 0;
    while n < ALL_NAMES.len() {
        let name = ALL_NAMES[n].as_str().as_bytes();
        assert!(ALL_NAMES[n] as usize == n && name.len() <= PACKED_NAME_LEN);
        let mut i = 0;
        while i < name.len() {
            table[n].lower[i] = name[i].to_ascii_lowercase();
            if name[i].is_ascii_alphabetic() {
                table[n].fold[i] = 0x20;
            }
            i += 1;
        }
        n += 1;
    }
    table
};

/// One header as it appears in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The resolved name (compact forms resolved, case ignored).
    pub name: HeaderName,
    /// The name as written (e.g. `b"v"` or `b"VIA"`), without the whitespace
    /// before the colon.
    pub raw_name: &'a [u8],
    /// Trimmed of leading/trailing SP/HT; for folded values (obs-fold: a line
    /// break followed by SP/HT) it spans the continuation lines and so may
    /// contain CR/LF/SP/HT inside — consumers treat those as linear white space.
    pub value: &'a [u8],
}

/// The first line of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// `METHOD SP Request-URI SP SIP/2.0`.
    Request {
        /// The resolved method.
        method: Method,
        /// The method token as written.
        method_bytes: &'a [u8],
        /// The Request-URI as written.
        uri: &'a [u8],
    },
    /// `SIP/2.0 SP 3DIGIT SP reason` (a status line without ` reason` is
    /// accepted, with an empty reason).
    Response {
        /// The status code, in `100..=699`.
        code: u16,
        /// The reason phrase as written; may be empty.
        reason: &'a [u8],
    },
}

/// A byte range `start..end` of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u16,
    end: u16,
}

impl Span {
    /// Both ends must be at most [`MAX_MESSAGE_LEN`], which `parse` checks
    /// before building any span.
    fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u16,
            end: end as u16,
        }
    }
}

/// One row of the header offset table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    name: HeaderName,
    raw_name: Span,
    value: Span,
}

/// Filler for unused table rows; all-zero bytes so the table initialises with
/// a plain memset. Rows at or past the header count are never read.
const EMPTY_ENTRY: Entry = Entry {
    name: HeaderName::Via,
    raw_name: Span { start: 0, end: 0 },
    value: Span { start: 0, end: 0 },
};

/// Offsets of the start line's parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartSpans {
    Request {
        method: Method,
        method_bytes: Span,
        uri: Span,
    },
    Response {
        code: u16,
        reason: Span,
    },
}

/// A checked, zero-copy view of one SIP message.
///
/// Built only by [`Message::parse`]; holds the input slice and a fixed table
/// of offsets, so it never allocates and no accessor can panic.
#[derive(Clone)]
pub struct Message<'a> {
    buf: &'a [u8],
    start: StartSpans,
    entries: [Entry; MAX_HEADERS],
    entry_count: u8,
    header_section_len: u16,
    body: Span,
    content_length: Option<u32>,
}

impl<'a> Message<'a> {
    /// Checks `buf` as one SIP message and returns a view over it.
    ///
    /// Accepts any byte slice; never panics. See [`ParseError`] for what is
    /// rejected. Errors are reported in message order, except that a control
    /// character anywhere before (or in the same line as) a structural error
    /// in the header section is reported as [`ParseError::ControlChar`];
    /// `Content-Length` is checked once the header section is complete.
    pub fn parse(buf: &'a [u8]) -> Result<Message<'a>, ParseError> {
        if buf.len() > MAX_MESSAGE_LEN {
            return Err(ParseError::TooLarge);
        }
        // Skip CR/LF before the start line (RFC 3261 §7.5, keep-alives).
        let first = buf
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .ok_or(ParseError::Empty)?;

        // One memchr pass finds every line end; lines are CRLF or bare LF.
        let mut newlines = memchr_iter(b'\n', &buf[first..]).map(|i| i + first);

        // Start line. Without any line terminator the buffer is a truncated
        // message, whatever its first bytes look like.
        let nl = newlines.next().ok_or(ParseError::NoHeaderEnd)?;
        let first_end = strip_cr(buf, first, nl);
        let start = parse_start_line(buf, first, first_end)?;

        let headers_at = nl + 1;
        // An error found in the header section is reported as `ControlChar`
        // if a control character precedes it.
        let fail = |upto: usize, e: ParseError| {
            if has_ctl_multiline(buf.get(headers_at..upto).unwrap_or(&[])) {
                ParseError::ControlChar
            } else {
                e
            }
        };
        let mut entries = [EMPTY_ENTRY; MAX_HEADERS];
        let mut count = 0usize;
        let mut pos = headers_at;
        let header_end = loop {
            let Some(nl) = newlines.next() else {
                return Err(fail(buf.len(), ParseError::NoHeaderEnd));
            };
            let end = strip_cr(buf, pos, nl);
            let line = &buf[pos..end];
            let Some(&lead) = line.first() else {
                break nl + 1;
            };
            if is_ws(lead) {
                // obs-fold: extend the previous header's value.
                let Some(prev) = count.checked_sub(1).and_then(|i| entries.get_mut(i)) else {
                    return Err(fail(nl, ParseError::UnexpectedContinuation));
                };
                let (s, e) = trim_ws_range(line, pos);
                if s < e {
                    if prev.value.start == prev.value.end {
                        prev.value.start = s as u16;
                    }
                    prev.value.end = e as u16;
                }
            } else {
                // token *(SP / HTAB) ":" value
                let Some(colon) = find_colon(line) else {
                    return Err(fail(nl, ParseError::HeaderSyntax));
                };
                let mut name_end = colon;
                while name_end > 0 && is_ws(line[name_end - 1]) {
                    name_end -= 1;
                }
                let raw_name = &line[..name_end];
                let name = HeaderName::from_bytes(raw_name);
                // Known names are tokens; only unknown ones need the check.
                if name == HeaderName::Other && (raw_name.is_empty() || !is_token(raw_name)) {
                    return Err(fail(nl, ParseError::HeaderName));
                }
                let Some(slot) = entries.get_mut(count) else {
                    return Err(fail(nl, ParseError::TooManyHeaders));
                };
                let (s, e) = trim_ws_range(&line[colon + 1..], pos + colon + 1);
                *slot = Entry {
                    name,
                    raw_name: Span::new(pos, pos + name_end),
                    value: Span::new(s, e),
                };
                count += 1;
            }
            pos = nl + 1;
        };

        // One vectorised pass over the whole header section: no control
        // characters, and every CR is the CR of a CR LF line end.
        let section = &buf[headers_at..header_end];
        if has_ctl_multiline(section) {
            return Err(ParseError::ControlChar);
        }

        // Content-Length: every occurrence valid and equal.
        let mut content_length: Option<u32> = None;
        for entry in &entries[..count] {
            if entry.name != HeaderName::ContentLength {
                continue;
            }
            let value = &buf[entry.value.start as usize..entry.value.end as usize];
            let n = parse_u32(value).ok_or(ParseError::ContentLength)?;
            match content_length {
                Some(prev) if prev != n => return Err(ParseError::ConflictingContentLength),
                _ => content_length = Some(n),
            }
        }
        let available = buf.len() - header_end;
        let body_end = match content_length {
            None => buf.len(),
            Some(n) if n as usize > available => return Err(ParseError::BodyTruncated),
            Some(n) => header_end + n as usize,
        };

        Ok(Message {
            buf,
            start,
            entries,
            entry_count: count as u8,
            header_section_len: header_end as u16,
            body: Span::new(header_end, body_end),
            content_length,
        })
    }

    /// The whole input buffer, as given to [`Message::parse`].
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The parsed start line.
    pub fn start_line(&self) -> StartLine<'a> {
        match self.start {
            StartSpans::Request {
                method,
                method_bytes,
                uri,
            } => StartLine::Request {
                method,
                method_bytes: self.slice(method_bytes),
                uri: self.slice(uri),
            },
            StartSpans::Response { code, reason } => StartLine::Response {
                code,
                reason: self.slice(reason),
            },
        }
    }

    /// `true` for a request, `false` for a response.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartSpans::Request { .. })
    }

    /// The request method; `None` for responses.
    pub fn method(&self) -> Option<Method> {
        match self.start {
            StartSpans::Request { method, .. } => Some(method),
            StartSpans::Response { .. } => None,
        }
    }

    /// The request method as written; `None` for responses.
    pub fn method_bytes(&self) -> Option<&'a [u8]> {
        match self.start {
            StartSpans::Request { method_bytes, .. } => Some(self.slice(method_bytes)),
            StartSpans::Response { .. } => None,
        }
    }

    /// The Request-URI as written; `None` for responses.
    pub fn request_uri(&self) -> Option<&'a [u8]> {
        match self.start {
            StartSpans::Request { uri, .. } => Some(self.slice(uri)),
            StartSpans::Response { .. } => None,
        }
    }

    /// The status code (`100..=699`); `None` for requests.
    pub fn status_code(&self) -> Option<u16> {
        match self.start {
            StartSpans::Response { code, .. } => Some(code),
            StartSpans::Request { .. } => None,
        }
    }

    /// The reason phrase as written (may be empty); `None` for requests.
    pub fn reason(&self) -> Option<&'a [u8]> {
        match self.start {
            StartSpans::Response { reason, .. } => Some(self.slice(reason)),
            StartSpans::Request { .. } => None,
        }
    }

    /// All headers, in message order.
    pub fn headers(&self) -> impl Iterator<Item = Header<'a>> + '_ {
        self.table().iter().map(move |e| Header {
            name: e.name,
            raw_name: self.slice(e.raw_name),
            value: self.slice(e.value),
        })
    }

    /// Number of headers in the message (at most [`MAX_HEADERS`]).
    pub fn header_count(&self) -> usize {
        self.table().len()
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: HeaderName) -> Option<&'a [u8]> {
        self.headers_named(name).next()
    }

    /// The values of every header called `name`, in message order.
    ///
    /// [`HeaderName::Other`] matches every unrecognised header; use
    /// [`Message::header_by_name`] to look one of those up by its name.
    pub fn headers_named(&self, name: HeaderName) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.table()
            .iter()
            .filter(move |e| e.name == name)
            .map(move |e| self.slice(e.value))
    }

    /// The value of the first header whose name matches `name`:
    /// case-insensitive, compact forms resolved (`b"i"` finds `Call-ID`);
    /// unrecognised names are compared with the raw names as written.
    pub fn header_by_name(&self, name: &[u8]) -> Option<&'a [u8]> {
        let resolved = HeaderName::from_bytes(name);
        self.table()
            .iter()
            .find(|e| {
                e.name == resolved
                    && (resolved != HeaderName::Other
                        || self.slice(e.raw_name).eq_ignore_ascii_case(name))
            })
            .map(|e| self.slice(e.value))
    }

    /// How many headers are called `name`.
    pub fn count(&self, name: HeaderName) -> usize {
        self.table().iter().filter(|e| e.name == name).count()
    }

    /// Every via-parm across all Via headers, in order: each header value is
    /// split on commas outside quoted strings and outside `<...>`, and each
    /// element trimmed of linear white space (empty elements are skipped).
    pub fn via_values(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.headers_named(HeaderName::Via).flat_map(split_list)
    }

    /// The parsed `Content-Length`, if the message has one.
    pub fn content_length(&self) -> Option<u32> {
        self.content_length
    }

    /// The message body: `Content-Length` bytes after the header section, or
    /// the rest of the buffer when there is no `Content-Length`.
    pub fn body(&self) -> &'a [u8] {
        self.slice(self.body)
    }

    /// Bytes from the start of the buffer up to and including the empty line
    /// that ends the header section (the body's offset).
    pub fn header_section_len(&self) -> usize {
        usize::from(self.header_section_len)
    }

    fn table(&self) -> &[Entry] {
        self.entries
            .get(..usize::from(self.entry_count))
            .unwrap_or(&[])
    }

    fn slice(&self, span: Span) -> &'a [u8] {
        self.buf
            .get(usize::from(span.start)..usize::from(span.end))
            .unwrap_or(&[])
    }
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Line<'a>(Header<'a>);
        impl fmt::Debug for Line<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let h = &self.0;
                write!(
                    f,
                    "{}: {}",
                    h.raw_name.escape_ascii(),
                    h.value.escape_ascii()
                )
            }
        }
        struct Headers<'m, 'a>(&'m Message<'a>);
        impl fmt::Debug for Headers<'_, '_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.headers().map(Line)).finish()
            }
        }
        let mut d = f.debug_struct("Message");
        match self.start_line() {
            StartLine::Request {
                method_bytes, uri, ..
            } => d.field(
                "request",
                &format_args!("{} {}", method_bytes.escape_ascii(), uri.escape_ascii()),
            ),
            StartLine::Response { code, reason } => d.field(
                "response",
                &format_args!("{} {}", code, reason.escape_ascii()),
            ),
        };
        d.field("headers", &Headers(self))
            .field("body_len", &self.body().len())
            .finish()
    }
}

/// The end of the content of the line `buf[pos..nl]` (where `buf[nl]` is
/// its LF): before the CR that ends it, if there is one.
fn strip_cr(buf: &[u8], pos: usize, nl: usize) -> usize {
    if nl > pos && buf.get(nl - 1) == Some(&b'\r') {
        nl - 1
    } else {
        nl
    }
}

/// Parses the start line `buf[start..end]` (no line terminator).
fn parse_start_line(buf: &[u8], start: usize, end: usize) -> Result<StartSpans, ParseError> {
    let line = &buf[start..end];
    if has_ctl(line) {
        return Err(ParseError::ControlChar);
    }
    let sp1 = memchr(b' ', line).ok_or(ParseError::StartLine)?;
    let first = &line[..sp1];
    let rest = &line[sp1 + 1..];
    let rest_at = start + sp1 + 1;

    if starts_with_ignore_case(first, b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        if !first.eq_ignore_ascii_case(SIP_VERSION) {
            return Err(ParseError::Version);
        }
        let (code_bytes, reason) = match memchr(b' ', rest) {
            Some(i) => (&rest[..i], Span::new(rest_at + i + 1, end)),
            None => (rest, Span::new(end, end)),
        };
        let code = match code_bytes {
            [a, b, c] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => return Err(ParseError::StatusCode),
        };
        if !(MIN_STATUS_CODE..=MAX_STATUS_CODE).contains(&code) {
            return Err(ParseError::StatusCode);
        }
        return Ok(StartSpans::Response { code, reason });
    }

    // Request-Line = Method SP Request-URI SP SIP-Version
    if first.is_empty() {
        return Err(ParseError::StartLine);
    }
    if !is_token(first) {
        return Err(ParseError::Method);
    }
    let sp2 = memchr(b' ', rest).ok_or(ParseError::StartLine)?;
    let uri = &rest[..sp2];
    let version = &rest[sp2 + 1..];
    if memchr(b' ', version).is_some() {
        return Err(ParseError::StartLine);
    }
    if !version.eq_ignore_ascii_case(SIP_VERSION) {
        return Err(ParseError::Version);
    }
    if !is_uri_like(uri) {
        return Err(ParseError::RequestUri);
    }
    Ok(StartSpans::Request {
        method: Method::from_bytes(first),
        method_bytes: Span::new(start, start + sp1),
        uri: Span::new(rest_at, rest_at + sp2),
    })
}

/// `scheme ":" rest`, scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ),
/// no whitespace anywhere (control characters are already excluded).
fn is_uri_like(uri: &[u8]) -> bool {
    let Some(colon) = memchr(b':', uri) else {
        return false;
    };
    let scheme = &uri[..colon];
    let scheme_ok = match scheme.split_first() {
        Some((first, tail)) => {
            first.is_ascii_alphabetic()
                && tail
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        }
        None => false,
    };
    scheme_ok && !uri.iter().any(|&b| is_ws(b))
}

/// Token characters of RFC 3261 §25.1:
/// alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~".
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    t
};

fn is_tchar(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

fn is_token(s: &[u8]) -> bool {
    s.iter().all(|&b| is_tchar(b))
}

/// A control character other than HT: `0x00..=0x1f` and `0x7f`.
fn is_ctl(b: u8) -> bool {
    ((b < 0x20) & (b != b'\t')) | (b == 0x7f)
}

/// Any control character other than HT in one line's content (CR and LF
/// included: the line terminator is already gone, so a CR here is a lone CR).
/// Branch-free so that it vectorises.
fn has_ctl(s: &[u8]) -> bool {
    s.iter().fold(false, |acc, &b| acc | is_ctl(b))
}

/// Any control character other than HT and line ends (LF, CR LF) in several
/// lines; a lone CR counts, except as the very last byte, where it may be the
/// first half of a cut CR LF. Works on fixed-size blocks so that it
/// vectorises.
fn has_ctl_multiline(s: &[u8]) -> bool {
    const BLOCK: usize = 32;
    let stray = |b: u8| is_ctl(b) & (b != b'\r') & (b != b'\n');
    // Checks byte `b` given the byte `n` after it.
    let bad = |b: u8, n: u8| stray(b) | ((b == b'\r') & (n != b'\n'));
    let next = s.get(1..).unwrap_or(&[]);
    let mut done = 0;
    for (block, after) in s.chunks_exact(BLOCK).zip(next.chunks_exact(BLOCK)) {
        let (Ok(block), Ok(after)) = (
            <&[u8; BLOCK]>::try_from(block),
            <&[u8; BLOCK]>::try_from(after),
        ) else {
            break;
        };
        if block
            .iter()
            .zip(after)
            .fold(false, |acc, (&b, &n)| acc | bad(b, n))
        {
            return true;
        }
        done += BLOCK;
    }
    let tail = s.get(done..).unwrap_or(&[]);
    let tail_next = next.get(done..).unwrap_or(&[]);
    tail.iter().zip(tail_next).any(|(&b, &n)| bad(b, n)) || s.last().is_some_and(|&b| stray(b))
}

/// Position of the first `:` in a header line. Header names are short, so a
/// word-at-a-time (SWAR) scan beats a `memchr` call's set-up cost here.
fn find_colon(line: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const COLONS: u64 = ONES * b':' as u64;
    let mut words = line.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ COLONS;
        // High bit set in each zero byte of `x`; the lowest one is exact.
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(at + (zeros.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    memchr(b':', words.remainder()).map(|i| at + i)
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Absolute range of `s` (which starts at `base`) without leading/trailing
/// SP/HT. Returns an empty range at the end if `s` is all white space.
fn trim_ws_range(s: &[u8], base: usize) -> (usize, usize) {
    let end = s.iter().rposition(|&b| !is_ws(b)).map_or(0, |i| i + 1);
    let start = s.iter().position(|&b| !is_ws(b)).unwrap_or(end);
    (base + start, base + end)
}

/// Trims linear white space (SP, HT, CR, LF) from both ends.
fn trim_lws(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|&b| !is_lws(b)).map_or(0, |i| i + 1);
    let start = s.iter().position(|&b| !is_lws(b)).unwrap_or(end);
    s.get(start..end).unwrap_or(&[])
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Non-empty decimal digits only, fitting in `u32`.
fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u32, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u32::from(b - b'0'))
        } else {
            None
        }
    })
}

fn non_empty(s: &[u8]) -> Option<&[u8]> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

/// Walks a header value yielding `(index, byte)` for the bytes that are at
/// top level: outside quoted strings (with `\` quoted-pairs) and, if
/// `angles` is set, outside `<...>`. An opening `<` is itself yielded; the
/// bytes up to and including the matching `>` are not.
struct TopLevel<'a> {
    s: &'a [u8],
    i: usize,
    angles: bool,
    in_quote: bool,
    in_angle: bool,
    saw_quote: bool,
}

impl<'a> TopLevel<'a> {
    fn new(s: &'a [u8], angles: bool) -> Self {
        TopLevel {
            s,
            i: 0,
            angles,
            in_quote: false,
            in_angle: false,
            saw_quote: false,
        }
    }
}

impl Iterator for TopLevel<'_> {
    type Item = (usize, u8);

    fn next(&mut self) -> Option<(usize, u8)> {
        while let Some(&b) = self.s.get(self.i) {
            let i = self.i;
            self.i += 1;
            if self.in_quote {
                if b == b'\\' {
                    self.i += 1;
                } else if b == b'"' {
                    self.in_quote = false;
                }
            } else if self.in_angle {
                if b == b'>' {
                    self.in_angle = false;
                }
            } else if b == b'"' {
                self.in_quote = true;
                self.saw_quote = true;
            } else {
                if b == b'<' && self.angles {
                    self.in_angle = true;
                }
                return Some((i, b));
            }
        }
        None
    }
}

/// Iterator over the elements of a comma-separated header value; see
/// [`split_list`].
#[derive(Debug, Clone)]
pub struct ListItems<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for ListItems<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let s = self.rest?;
            let comma = TopLevel::new(s, true)
                .find(|&(_, b)| b == b',')
                .map(|(i, _)| i);
            let item = match comma {
                Some(i) => {
                    self.rest = s.get(i + 1..);
                    s.get(..i).unwrap_or(&[])
                }
                None => {
                    self.rest = None;
                    s
                }
            };
            let item = trim_lws(item);
            if !item.is_empty() {
                return Some(item);
            }
        }
    }
}

/// Splits a header value on commas outside quoted strings and outside
/// `<...>`, yielding each element trimmed of linear white space; empty
/// elements are skipped. `a, "x,y" <sip:b,c>;p=1` → `a`, `"x,y" <sip:b,c>;p=1`.
pub fn split_list(value: &[u8]) -> ListItems<'_> {
    ListItems { rest: Some(value) }
}

/// URI inside a name-addr or addr-spec header value (From/To/Contact/Route):
/// `"Bob" <sip:bob@h>;tag=1` → `sip:bob@h`; `sip:bob@h;tag=1` → `sip:bob@h`
/// (addr-spec: params after ';' belong to the header, per RFC 3261 §20).
///
/// Returns `None` for an unterminated `<` or quoted string, a display name
/// without `<...>`, or an empty URI. Only the first element of a
/// comma-separated list is looked at.
pub fn name_addr_uri(value: &[u8]) -> Option<&[u8]> {
    let v = trim_lws(value);
    let mut scan = TopLevel::new(v, false);
    let mut end = v.len();
    for (i, b) in scan.by_ref() {
        match b {
            b'<' => {
                let inner = v.get(i + 1..)?;
                let close = memchr(b'>', inner)?;
                return non_empty(trim_lws(inner.get(..close)?));
            }
            b';' | b',' => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    if scan.in_quote || scan.saw_quote {
        return None;
    }
    non_empty(trim_lws(v.get(..end)?))
}

/// user part of a sip:/sips:/tel: URI: `sip:alice:pw@host;x` → `alice`;
/// `sip:host` → None; `tel:+123` → `+123`.
///
/// Schemes are matched case-insensitively; other schemes give `None`. For
/// `tel:` the user is the number before any `;` parameter.
pub fn uri_user(uri: &[u8]) -> Option<&[u8]> {
    let uri = trim_lws(uri);
    if starts_with_ignore_case(uri, b"tel:") {
        let rest = uri.get(4..)?;
        let end = memchr(b';', rest).unwrap_or(rest.len());
        return non_empty(rest.get(..end)?);
    }
    let rest = if starts_with_ignore_case(uri, b"sip:") {
        uri.get(4..)?
    } else if starts_with_ignore_case(uri, b"sips:") {
        uri.get(5..)?
    } else {
        return None;
    };
    let userinfo = rest.get(..memchr(b'@', rest)?)?;
    let end = memchr(b':', userinfo).unwrap_or(userinfo.len());
    non_empty(userinfo.get(..end)?)
}

/// A header parameter after the name-addr (`;tag=abc` → `abc`), name
/// case-insensitive; a parameter without value returns `Some(b"")`.
/// Does not look inside `<...>` or quoted display names.
///
/// The value is returned as written, trimmed (a quoted-string value keeps
/// its quotes). Only the first element of a comma-separated list is looked
/// at; split with [`split_list`] first to reach the others.
pub fn header_param<'a>(value: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    // Find the first top-level ';' (start of params) and the ',' ending them.
    let mut start = None;
    let mut end = value.len();
    for (i, b) in TopLevel::new(value, true) {
        match b {
            b';' if start.is_none() => start = Some(i + 1),
            b',' => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let params = value.get(start?..end)?;
    let mut rest = params;
    loop {
        let semi = TopLevel::new(rest, false)
            .find(|&(_, b)| b == b';')
            .map(|(i, _)| i);
        let param = rest.get(..semi.unwrap_or(rest.len()))?;
        let (pname, pvalue) = match memchr(b'=', param) {
            Some(eq) => (param.get(..eq)?, param.get(eq + 1..)?),
            None => (param, &param[param.len()..]),
        };
        if trim_lws(pname).eq_ignore_ascii_case(name) {
            return Some(trim_lws(pvalue));
        }
        rest = rest.get(semi? + 1..)?;
    }
}

/// CSeq value → (sequence number, method bytes). `"  101 REGISTER"` →
/// `(101, b"REGISTER")`.
///
/// The number must be decimal and fit in `u32`; the method must be a token
/// separated from it by linear white space, with nothing after it.
pub fn cseq(value: &[u8]) -> Option<(u32, &[u8])> {
    let v = trim_lws(value);
    let digits = v.iter().position(|b| !b.is_ascii_digit())?;
    let n = parse_u32(v.get(..digits)?)?;
    let rest = v.get(digits..)?;
    if !rest.first().is_some_and(|&b| is_lws(b)) {
        return None;
    }
    let method = trim_lws(rest);
    if method.is_empty() || !is_token(method) {
        return None;
    }
    Some((n, method))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REGISTER: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n\
To: <sip:alice@example.com>\r\n\
Call-ID: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314160 REGISTER\r\n\
Contact: <sip:alice@192.0.2.10:5060>;expires=3600\r\n\
Authorization: Digest username=\"alice\", realm=\"example.com\", \
nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:example.com\", \
response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5\r\n\
User-Agent: sipgw-test/1.0\r\n\
Content-Length: 0\r\n\
\r\n";

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n\
Max-Forwards: 70\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 151\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\r\n\
s=-\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

    const OK_200: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bK2d4790.1;received=192.0.2.3\r\n\
Via: SIP/2.0/UDP client.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101\r\n\
From: Alice <sip:alice@example.com>;tag=9fxced76sl\r\n\
To: Bob <sip:bob@example.com>;tag=8321234356\r\n\
Call-ID: 3848276298220188511@example.com\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:bob@192.0.2.4>\r\n\
Content-Length: 0\r\n\
\r\n";

    const COMPACT: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
v: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n\
f: <sip:alice@example.com>;tag=1\r\n\
t: <sip:bob@example.com>\r\n\
i: abc@a.example.com\r\n\
m: <sip:alice@a.example.com>\r\n\
k: timer\r\n\
s: lunch\r\n\
c: text/plain\r\n\
l: 5\r\n\
CSeq: 1 INVITE\r\n\
\r\n\
hello";

    const FOLDED: &[u8] = b"OPTIONS sip:a@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n\
Subject: first part\r\n \tsecond part  \r\n\
Call-ID: x@y\r\n\
\r\n";

    const BARE_LF: &[u8] = b"BYE sip:bob@example.com SIP/2.0\n\
Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\n\
Call-ID: x@y\n\
CSeq: 2 BYE\n\
Content-Length: 3\n\
\n\
abcEXTRA";

    const SAMPLES: &[&[u8]] = &[REGISTER, INVITE, OK_200, COMPACT, FOLDED, BARE_LF];

    fn parse(b: &[u8]) -> Result<Message<'_>, ParseError> {
        Message::parse(b)
    }

    fn within(outer: &[u8], inner: &[u8]) -> bool {
        // Empty slices may be a `&[]` fallback that points anywhere.
        if inner.is_empty() {
            return true;
        }
        let o = outer.as_ptr_range();
        let i = inner.as_ptr_range();
        o.start <= i.start && i.end <= o.end
    }

    /// Calls every accessor and every helper on every header value, checking
    /// that each returned slice borrows from `buf`.
    fn exercise(buf: &[u8]) {
        let Ok(m) = Message::parse(buf) else {
            return;
        };
        let ok = |s: &[u8]| assert!(within(buf, s), "slice outside input");
        assert_eq!(m.as_bytes(), buf);
        assert!(m.header_section_len() <= buf.len());
        ok(m.body());
        assert_eq!(
            m.body().as_ptr() as usize - buf.as_ptr() as usize,
            m.header_section_len()
        );
        match m.start_line() {
            StartLine::Request {
                method,
                method_bytes,
                uri,
            } => {
                ok(method_bytes);
                ok(uri);
                assert!(m.is_request());
                assert_eq!(m.method(), Some(method));
                assert_eq!(Method::from_bytes(method_bytes), method);
                assert!(m.status_code().is_none());
                if let Some(u) = uri_user(uri) {
                    ok(u);
                }
            }
            StartLine::Response { code, reason } => {
                ok(reason);
                assert!(!m.is_request());
                assert_eq!(m.status_code(), Some(code));
                assert!((100..=699).contains(&code));
                assert!(m.method().is_none() && m.method_bytes().is_none());
                assert!(m.request_uri().is_none());
            }
        }
        m.method_bytes().into_iter().for_each(ok);
        m.request_uri().into_iter().for_each(ok);
        m.reason().into_iter().for_each(ok);
        let _ = format!("{m:?}");
        assert!(m.header_count() <= MAX_HEADERS);
        assert_eq!(m.headers().count(), m.header_count());
        for h in m.headers() {
            ok(h.raw_name);
            ok(h.value);
            assert_eq!(HeaderName::from_bytes(h.raw_name), h.name);
            assert!(m.count(h.name) >= 1);
            m.header(h.name).into_iter().for_each(ok);
            m.headers_named(h.name).for_each(ok);
            m.header_by_name(h.raw_name).into_iter().for_each(ok);
            m.header_by_name(h.name.as_str().as_bytes())
                .into_iter()
                .for_each(ok);
            for v in [h.value, h.raw_name] {
                if let Some(u) = name_addr_uri(v) {
                    ok(u);
                    uri_user(u).into_iter().for_each(ok);
                }
                uri_user(v).into_iter().for_each(ok);
                for p in [&b"tag"[..], b"branch", b"", b"x"] {
                    header_param(v, p).into_iter().for_each(ok);
                }
                if let Some((_, meth)) = cseq(v) {
                    ok(meth);
                }
                split_list(v).for_each(|item| {
                    ok(item);
                    header_param(item, b"tag").into_iter().for_each(ok);
                    name_addr_uri(item).into_iter().for_each(ok);
                });
            }
        }
        m.via_values().for_each(ok);
        if let Some(n) = m.content_length() {
            assert_eq!(m.body().len(), n as usize);
        }
    }

    // ---- valid vectors -------------------------------------------------

    #[test]
    fn register_with_authorization() {
        let m = parse(REGISTER).unwrap();
        assert!(m.is_request());
        assert_eq!(m.method(), Some(Method::Register));
        assert_eq!(m.method_bytes(), Some(&b"REGISTER"[..]));
        assert_eq!(m.request_uri(), Some(&b"sip:example.com"[..]));
        assert_eq!(m.status_code(), None);
        assert_eq!(m.header_count(), 10);
        assert_eq!(
            m.header(HeaderName::CallId),
            Some(&b"a84b4c76e66710@pc33.example.com"[..])
        );
        let auth = m.header(HeaderName::Authorization).unwrap();
        assert!(auth.starts_with(b"Digest username=\"alice\""));
        assert!(auth.ends_with(b"algorithm=MD5"));
        assert_eq!(
            cseq(m.header(HeaderName::CSeq).unwrap()),
            Some((314160, &b"REGISTER"[..]))
        );
        let from = m.header(HeaderName::From).unwrap();
        assert_eq!(name_addr_uri(from), Some(&b"sip:alice@example.com"[..]));
        assert_eq!(header_param(from, b"tag"), Some(&b"1928301774"[..]));
        assert_eq!(uri_user(name_addr_uri(from).unwrap()), Some(&b"alice"[..]));
        assert_eq!(
            header_param(m.header(HeaderName::To).unwrap(), b"tag"),
            None
        );
        let contact = m.header(HeaderName::Contact).unwrap();
        assert_eq!(header_param(contact, b"expires"), Some(&b"3600"[..]));
        let via: Vec<_> = m.via_values().collect();
        assert_eq!(
            via,
            [&b"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport"[..]]
        );
        assert_eq!(header_param(via[0], b"rport"), Some(&b""[..]));
        assert_eq!(
            header_param(via[0], b"BRANCH"),
            Some(&b"z9hG4bK776asdhds"[..])
        );
        assert_eq!(m.content_length(), Some(0));
        assert_eq!(m.body(), b"");
        assert_eq!(m.header_section_len(), REGISTER.len());
        assert_eq!(m.as_bytes(), REGISTER);
        assert_eq!(
            m.header_by_name(b"user-agent"),
            Some(&b"sipgw-test/1.0"[..])
        );
        assert_eq!(m.header_by_name(b"MAX-FORWARDS"), Some(&b"70"[..]));
        let first = m.headers().next().unwrap();
        assert_eq!(first.name, HeaderName::Via);
        assert_eq!(first.raw_name, b"Via");
    }

    #[test]
    fn invite_with_sdp_body() {
        let m = parse(INVITE).unwrap();
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(
            m.header(HeaderName::ContentType),
            Some(&b"application/sdp"[..])
        );
        assert_eq!(m.body().len(), 151);
        assert!(m.body().starts_with(b"v=0\r\n"));
        assert!(m.body().ends_with(b"a=rtpmap:0 PCMU/8000\r\n"));
        assert_eq!(m.header_section_len() + 151, INVITE.len());
        let to = m.header(HeaderName::To).unwrap();
        assert_eq!(name_addr_uri(to), Some(&b"sip:bob@biloxi.example.com"[..]));
        let contact = m.header(HeaderName::Contact).unwrap();
        assert_eq!(
            name_addr_uri(contact),
            Some(&b"sip:alice@client.atlanta.example.com;transport=tcp"[..])
        );
        // Params inside <...> are URI params, not header params.
        assert_eq!(header_param(contact, b"transport"), None);
    }

    #[test]
    fn ok_200_response() {
        let m = parse(OK_200).unwrap();
        assert!(!m.is_request());
        assert_eq!(m.status_code(), Some(200));
        assert_eq!(m.reason(), Some(&b"OK"[..]));
        assert_eq!(
            m.start_line(),
            StartLine::Response {
                code: 200,
                reason: b"OK"
            }
        );
        assert_eq!(m.method(), None);
        assert_eq!(m.method_bytes(), None);
        assert_eq!(m.request_uri(), None);
        assert_eq!(m.count(HeaderName::Via), 2);
        let vias: Vec<_> = m.headers_named(HeaderName::Via).collect();
        assert!(vias[0].starts_with(b"SIP/2.0/UDP proxy."));
        assert!(vias[1].starts_with(b"SIP/2.0/UDP client."));
        assert_eq!(m.via_values().count(), 2);
        assert_eq!(
            header_param(m.header(HeaderName::To).unwrap(), b"tag"),
            Some(&b"8321234356"[..])
        );
    }

    #[test]
    fn status_line_variants() {
        let m = parse(b"SIP/2.0 180 \r\n\r\n").unwrap();
        assert_eq!(m.status_code(), Some(180));
        assert_eq!(m.reason(), Some(&b""[..]));
        let m = parse(b"SIP/2.0 100\r\n\r\n").unwrap();
        assert_eq!(m.status_code(), Some(100));
        assert_eq!(m.reason(), Some(&b""[..]));
        let m = parse(b"sip/2.0 699 Very \tStrange Reason\r\n\r\n").unwrap();
        assert_eq!(m.status_code(), Some(699));
        assert_eq!(m.reason(), Some(&b"Very \tStrange Reason"[..]));
        let m = parse(b"SIP/2.0 401 Unauthorized\r\n\r\n").unwrap();
        assert_eq!(m.header_count(), 0);
        assert_eq!(m.body(), b"");
    }

    #[test]
    fn compact_forms() {
        let m = parse(COMPACT).unwrap();
        let names: Vec<_> = m.headers().map(|h| h.name).collect();
        assert_eq!(
            names,
            [
                HeaderName::Via,
                HeaderName::From,
                HeaderName::To,
                HeaderName::CallId,
                HeaderName::Contact,
                HeaderName::Supported,
                HeaderName::Subject,
                HeaderName::ContentType,
                HeaderName::ContentLength,
                HeaderName::CSeq,
            ]
        );
        assert_eq!(
            m.header(HeaderName::CallId),
            Some(&b"abc@a.example.com"[..])
        );
        assert_eq!(
            m.header_by_name(b"Call-ID"),
            Some(&b"abc@a.example.com"[..])
        );
        assert_eq!(m.header_by_name(b"I"), Some(&b"abc@a.example.com"[..]));
        assert_eq!(m.header(HeaderName::Supported), Some(&b"timer"[..]));
        assert_eq!(m.header(HeaderName::Subject), Some(&b"lunch"[..]));
        assert_eq!(m.header(HeaderName::ContentType), Some(&b"text/plain"[..]));
        assert_eq!(m.content_length(), Some(5));
        assert_eq!(m.body(), b"hello");
        assert_eq!(m.headers().next().unwrap().raw_name, b"v");
        let via: Vec<_> = m.via_values().collect();
        assert_eq!(via, [&b"SIP/2.0/UDP a.example.com;branch=z9hG4bK1"[..]]);
    }

    /// Straightforward reference for `HeaderName::from_bytes`.
    fn reference_name(name: &[u8]) -> HeaderName {
        let compact: &[(u8, HeaderName)] = &[
            (b'v', HeaderName::Via),
            (b'f', HeaderName::From),
            (b't', HeaderName::To),
            (b'i', HeaderName::CallId),
            (b'm', HeaderName::Contact),
            (b'l', HeaderName::ContentLength),
            (b'k', HeaderName::Supported),
            (b's', HeaderName::Subject),
            (b'c', HeaderName::ContentType),
            (b'e', HeaderName::ContentEncoding),
            (b'o', HeaderName::Event),
            (b'u', HeaderName::AllowEvents),
            (b'r', HeaderName::ReferTo),
            (b'b', HeaderName::ReferredBy),
            (b'x', HeaderName::SessionExpires),
        ];
        if let [c] = name {
            return compact
                .iter()
                .find(|(k, _)| c.eq_ignore_ascii_case(k))
                .map_or(HeaderName::Other, |&(_, n)| n);
        }
        ALL_NAMES
            .iter()
            .copied()
            .find(|n| n.as_str().as_bytes().eq_ignore_ascii_case(name))
            .unwrap_or(HeaderName::Other)
    }

    #[test]
    fn header_name_near_misses() {
        for n in ALL_NAMES {
            let canon = n.as_str().as_bytes();
            for i in 0..canon.len() {
                for b in [
                    0u8,
                    b'\r',
                    b'_',
                    b'-',
                    b'a',
                    b'Z',
                    b'0',
                    0x80,
                    0xff,
                    canon[i] ^ 0x20,
                ] {
                    let mut v = canon.to_vec();
                    v[i] = b;
                    assert_eq!(
                        HeaderName::from_bytes(&v),
                        reference_name(&v),
                        "{}",
                        v.escape_ascii()
                    );
                }
            }
            // One byte longer or shorter.
            let mut longer = canon.to_vec();
            longer.push(b's');
            assert_eq!(HeaderName::from_bytes(&longer), HeaderName::Other);
            assert_eq!(
                HeaderName::from_bytes(&canon[..canon.len() - 1]),
                reference_name(&canon[..canon.len() - 1])
            );
        }
    }

    #[test]
    fn header_name_table() {
        let all = [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
            HeaderName::Contact,
            HeaderName::ContentLength,
            HeaderName::ContentType,
            HeaderName::ContentEncoding,
            HeaderName::MaxForwards,
            HeaderName::Authorization,
            HeaderName::ProxyAuthorization,
            HeaderName::WwwAuthenticate,
            HeaderName::ProxyAuthenticate,
            HeaderName::Route,
            HeaderName::RecordRoute,
            HeaderName::Path,
            HeaderName::Expires,
            HeaderName::Supported,
            HeaderName::Subject,
            HeaderName::Event,
            HeaderName::AllowEvents,
            HeaderName::ReferTo,
            HeaderName::ReferredBy,
            HeaderName::SessionExpires,
            HeaderName::Allow,
            HeaderName::UserAgent,
        ];
        for n in all {
            let s = n.as_str();
            assert_eq!(HeaderName::from_bytes(s.as_bytes()), n, "{s}");
            assert_eq!(HeaderName::from_bytes(s.to_ascii_uppercase().as_bytes()), n);
            assert_eq!(HeaderName::from_bytes(s.to_ascii_lowercase().as_bytes()), n);
        }
        for (c, n) in [
            ("v", HeaderName::Via),
            ("f", HeaderName::From),
            ("t", HeaderName::To),
            ("i", HeaderName::CallId),
            ("m", HeaderName::Contact),
            ("l", HeaderName::ContentLength),
            ("k", HeaderName::Supported),
            ("s", HeaderName::Subject),
            ("c", HeaderName::ContentType),
            ("e", HeaderName::ContentEncoding),
            ("o", HeaderName::Event),
            ("u", HeaderName::AllowEvents),
            ("r", HeaderName::ReferTo),
            ("b", HeaderName::ReferredBy),
            ("x", HeaderName::SessionExpires),
        ] {
            assert_eq!(HeaderName::from_bytes(c.as_bytes()), n);
            assert_eq!(HeaderName::from_bytes(c.to_ascii_uppercase().as_bytes()), n);
        }
        assert_eq!(HeaderName::from_bytes(b"a"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b""), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"X-Custom"), HeaderName::Other);
        assert_eq!(
            HeaderName::from_bytes(b"Proxy-Authorization-X"),
            HeaderName::Other
        );
        assert_eq!(HeaderName::from_bytes(b"Via "), HeaderName::Other);
        assert_eq!(HeaderName::Other.as_str(), "");
        assert_eq!(HeaderName::CallId.as_str(), "Call-ID");
        assert_eq!(HeaderName::WwwAuthenticate.as_str(), "WWW-Authenticate");
    }

    #[test]
    fn method_table() {
        for m in [
            Method::Register,
            Method::Invite,
            Method::Ack,
            Method::Cancel,
            Method::Bye,
            Method::Options,
            Method::Subscribe,
            Method::Notify,
            Method::Refer,
            Method::Message,
            Method::Info,
            Method::Prack,
            Method::Update,
            Method::Publish,
        ] {
            assert_eq!(Method::from_bytes(m.as_str().as_bytes()), m);
            // Case-sensitive.
            assert_eq!(
                Method::from_bytes(m.as_str().to_ascii_lowercase().as_bytes()),
                Method::Other
            );
        }
        assert_eq!(Method::Other.as_str(), "OTHER");
        assert_eq!(Method::from_bytes(b"OTHER"), Method::Other);
        let m = parse(b"invite sip:a@b SIP/2.0\r\n\r\n").unwrap();
        assert_eq!(m.method(), Some(Method::Other));
        assert_eq!(m.method_bytes(), Some(&b"invite"[..]));
        let m = parse(b"FOO.BAR-1! tel:+1 SIP/2.0\r\n\r\n").unwrap();
        assert_eq!(m.method(), Some(Method::Other));
    }

    #[test]
    fn case_insensitive_names() {
        let msg = b"OPTIONS sip:a@b SIP/2.0\r\n\
VIA: SIP/2.0/UDP h1;branch=z9hG4bK1\r\n\
call-id: abc\r\n\
cSeQ: 7 OPTIONS\r\n\
X-Custom-Thing : hello\r\n\
content-LENGTH: 0\r\n\
\r\n";
        let m = parse(msg).unwrap();
        assert_eq!(
            m.header(HeaderName::Via),
            Some(&b"SIP/2.0/UDP h1;branch=z9hG4bK1"[..])
        );
        assert_eq!(m.header(HeaderName::CallId), Some(&b"abc"[..]));
        assert_eq!(m.header(HeaderName::CSeq), Some(&b"7 OPTIONS"[..]));
        assert_eq!(m.header_by_name(b"x-custom-thing"), Some(&b"hello"[..]));
        assert_eq!(m.header_by_name(b"X-Other"), None);
        assert_eq!(m.header(HeaderName::Other), Some(&b"hello"[..]));
        let h: Vec<_> = m.headers().collect();
        assert_eq!(h[0].raw_name, b"VIA");
        assert_eq!(h[3].raw_name, b"X-Custom-Thing");
        assert_eq!(m.content_length(), Some(0));
    }

    #[test]
    fn via_lists_and_repeats() {
        let msg = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP a;branch=z9hG4bK1;x=\"p,q\" , SIP/2.0/UDP b;branch=z9hG4bK2\r\n\
v: SIP/2.0/TCP c;branch=z9hG4bK3;y=\"esc\\\",aped\",,\r\n\
Via:  SIP/2.0/UDP <odd,host>;branch=z9hG4bK4\r\n\
\r\n";
        let m = parse(msg).unwrap();
        assert_eq!(m.count(HeaderName::Via), 3);
        let v: Vec<_> = m.via_values().collect();
        assert_eq!(
            v,
            [
                &b"SIP/2.0/UDP a;branch=z9hG4bK1;x=\"p,q\""[..],
                b"SIP/2.0/UDP b;branch=z9hG4bK2",
                b"SIP/2.0/TCP c;branch=z9hG4bK3;y=\"esc\\\",aped\"",
                b"SIP/2.0/UDP <odd,host>;branch=z9hG4bK4",
            ]
        );
        assert_eq!(header_param(v[0], b"x"), Some(&b"\"p,q\""[..]));
        assert_eq!(header_param(v[1], b"branch"), Some(&b"z9hG4bK2"[..]));
        assert_eq!(header_param(v[2], b"y"), Some(&b"\"esc\\\",aped\""[..]));
    }

    #[test]
    fn folded_values() {
        let m = parse(FOLDED).unwrap();
        let subj = m.header(HeaderName::Subject).unwrap();
        assert_eq!(subj, b"first part\r\n \tsecond part");
        assert_eq!(m.header(HeaderName::CallId), Some(&b"x@y"[..]));
        // Empty first line, value only on the continuation; several folds.
        let msg = b"MESSAGE sip:a@b SIP/2.0\r\n\
Subject:\r\n  hello\r\n\t world \r\n   \r\n\
To: <sip:a@b>\r\n  ;tag=xyz\r\n\
l:\r\n 2\r\n\
\r\nhi";
        let m = parse(msg).unwrap();
        assert_eq!(
            m.header(HeaderName::Subject),
            Some(&b"hello\r\n\t world"[..])
        );
        let to = m.header(HeaderName::To).unwrap();
        assert_eq!(to, b"<sip:a@b>\r\n  ;tag=xyz");
        assert_eq!(header_param(to, b"tag"), Some(&b"xyz"[..]));
        assert_eq!(name_addr_uri(to), Some(&b"sip:a@b"[..]));
        assert_eq!(m.body(), b"hi");
        // A folded CSeq is still a CSeq.
        assert_eq!(cseq(b"12\r\n INVITE"), Some((12, &b"INVITE"[..])));
    }

    #[test]
    fn bare_lf() {
        let m = parse(BARE_LF).unwrap();
        assert_eq!(m.method(), Some(Method::Bye));
        assert_eq!(m.header(HeaderName::CallId), Some(&b"x@y"[..]));
        assert_eq!(m.header(HeaderName::CSeq), Some(&b"2 BYE"[..]));
        // Content-Length shorter than the datagram: extra bytes ignored.
        assert_eq!(m.body(), b"abc");
        // Mixed line endings.
        let m = parse(b"ACK sip:a@b SIP/2.0\nCall-ID: q\r\nCSeq: 1 ACK\n\r\n").unwrap();
        assert_eq!(m.header(HeaderName::CSeq), Some(&b"1 ACK"[..]));
    }

    #[test]
    fn body_without_content_length_is_rest() {
        let m = parse(b"MESSAGE sip:a@b SIP/2.0\r\nTo: <sip:a@b>\r\n\r\nfree\0body\xff").unwrap();
        assert_eq!(m.content_length(), None);
        assert_eq!(m.body(), b"free\0body\xff");
    }

    #[test]
    fn leading_crlf_skipped() {
        let m = parse(b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\n\r\n").unwrap();
        assert_eq!(m.method(), Some(Method::Options));
        assert_eq!(m.header_section_len(), 4 + 27);
    }

    #[test]
    fn equal_duplicate_content_length_ok() {
        let m = parse(b"MESSAGE sip:a@b SIP/2.0\r\nl: 2\r\nContent-Length: 002\r\n\r\nhi").unwrap();
        assert_eq!(m.content_length(), Some(2));
        assert_eq!(m.body(), b"hi");
    }

    #[test]
    fn header_name_whitespace_and_colons() {
        let m = parse(b"OPTIONS sip:a@b SIP/2.0\r\nVia \t: v1\r\nSubject:: odd\r\n\r\n").unwrap();
        assert_eq!(m.header(HeaderName::Via), Some(&b"v1"[..]));
        assert_eq!(m.header(HeaderName::Subject), Some(&b": odd"[..]));
        let m = parse(b"OPTIONS sip:a@b SIP/2.0\r\nSubject:\r\n\r\n").unwrap();
        assert_eq!(m.header(HeaderName::Subject), Some(&b""[..]));
    }

    #[test]
    fn max_sizes_accepted() {
        let mut msg = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            msg.extend_from_slice(format!("X-H{i}: {i}\r\n").as_bytes());
        }
        msg.extend_from_slice(b"\r\n");
        let m = parse(&msg).unwrap();
        assert_eq!(m.header_count(), MAX_HEADERS);
        assert_eq!(m.header_by_name(b"x-h63"), Some(&b"63"[..]));

        let mut msg = b"MESSAGE sip:a@b SIP/2.0\r\n\r\n".to_vec();
        msg.resize(MAX_MESSAGE_LEN, b'z');
        let m = parse(&msg).unwrap();
        assert_eq!(m.body().len(), MAX_MESSAGE_LEN - 27);
    }

    // ---- nasty inputs --------------------------------------------------

    fn err(b: &[u8]) -> ParseError {
        Message::parse(b).unwrap_err()
    }

    #[test]
    fn rejects_with_exact_errors() {
        use ParseError::*;
        let cases: &[(&[u8], ParseError)] = &[
            (b"", Empty),
            (b"\r\n\r\n", Empty),
            (b"\n", Empty),
            // Only a start line.
            (b"INVITE sip:a@b SIP/2.0", NoHeaderEnd),
            (b"INVITE sip:a@b SIP/2.0\r", NoHeaderEnd),
            (b"GARBAGE", NoHeaderEnd),
            (b"INVITE sip:a@b SIP/2.0\r\n", NoHeaderEnd),
            (b"SIP/2.0 200 OK\r\n", NoHeaderEnd),
            // Truncated in the middle of a header.
            (
                b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;bra",
                NoHeaderEnd,
            ),
            (
                b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r",
                NoHeaderEnd,
            ),
            // No blank line.
            (
                b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\nTo: y\r\n",
                NoHeaderEnd,
            ),
            // NUL / control characters.
            (b"INVITE sip:a@b SIP/2.0\r\nTo: a\0b\r\n\r\n", ControlChar),
            (b"INV\0ITE sip:a@b SIP/2.0\r\n\r\n", ControlChar),
            (b"INVITE sip:a@b SIP/2.0\r\nTo: a\rb\r\n\r\n", ControlChar),
            (b"INVITE sip:a@b SIP/2.0\r\nTo: a\x7f\r\n\r\n", ControlChar),
            (
                b"INVITE sip:a@b SIP/2.0\r\nTo: a\x1b[0m\r\n\r\n",
                ControlChar,
            ),
            (b"INVITE sip:a@b SIP/2.0\r\r\n\r\n", ControlChar),
            (b"INVITE sip:a@b SIP/2.0\r\nT\0o: a\r\n\r\n", ControlChar),
            // A control character wins over a later structural error.
            (
                b"INVITE sip:a@b SIP/2.0\r\nTo: a\0\r\nVia x\r\n\r\n",
                ControlChar,
            ),
            (b"INVITE sip:a@b SIP/2.0\r\nTo: a\0\r\n", ControlChar),
            (
                b"INVITE sip:a@b SIP/2.0\r\nTo: a\r\n\0\r\n\r\n",
                ControlChar,
            ),
            // Versions.
            (b"INVITE sip:a@b SIP/3.0\r\n\r\n", Version),
            (b"INVITE sip:a@b HTTP/1.1\r\n\r\n", Version),
            (b"SIP/1.0 200 OK\r\n\r\n", Version),
            (b"SIP/2.00 200 OK\r\n\r\n", Version),
            // Status codes.
            (b"SIP/2.0 99 Too Low\r\n\r\n", StatusCode),
            (b"SIP/2.0 700 Too High\r\n\r\n", StatusCode),
            (b"SIP/2.0 abc OK\r\n\r\n", StatusCode),
            (b"SIP/2.0 2000 OK\r\n\r\n", StatusCode),
            (b"SIP/2.0 099 OK\r\n\r\n", StatusCode),
            (b"SIP/2.0  200 OK\r\n\r\n", StatusCode),
            (b"SIP/2.0 \r\n\r\n", StatusCode),
            // Start line shape.
            (b"INVITE\r\n\r\n", StartLine),
            (b"INVITE sip:a@b\r\n\r\n", StartLine),
            (b"INVITE sip:a@b SIP/2.0 extra\r\n\r\n", StartLine),
            (b" INVITE sip:a@b SIP/2.0\r\n\r\n", StartLine),
            (b"SIP/2.0\r\n\r\n", StartLine),
            (b"INV(ITE sip:a@b SIP/2.0\r\n\r\n", Method),
            (b"INVITE  sip:a@b SIP/2.0\r\n\r\n", StartLine),
            (b"INVITE <sip:a@b> SIP/2.0\r\n\r\n", RequestUri),
            (b"INVITE nocolon SIP/2.0\r\n\r\n", RequestUri),
            (b"INVITE :a@b SIP/2.0\r\n\r\n", RequestUri),
            (b"INVITE 1sip:a@b SIP/2.0\r\n\r\n", RequestUri),
            (b"INVITE sip:a\t@b SIP/2.0\r\n\r\n", RequestUri),
            // Content-Length.
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nshort",
                BodyTruncated,
            ),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nl: 4294967295\r\n\r\nx",
                BodyTruncated,
            ),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n",
                ContentLength,
            ),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: abc\r\n\r\n",
                ContentLength,
            ),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 4294967296\r\n\r\n",
                ContentLength,
            ),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 99999999999999999999\r\n\r\n",
                ContentLength,
            ),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: +5\r\n\r\nhello",
                ContentLength,
            ),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 1 2\r\n\r\nhello",
                ContentLength,
            ),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length:\r\n\r\n",
                ContentLength,
            ),
            (b"MESSAGE sip:a@b SIP/2.0\r\nl: 0x10\r\n\r\n", ContentLength),
            (
                b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 2\r\nl: 3\r\n\r\nabc",
                ConflictingContentLength,
            ),
            // Header syntax.
            (b"OPTIONS sip:a@b SIP/2.0\r\nCall ID: x\r\n\r\n", HeaderName),
            (b"OPTIONS sip:a@b SIP/2.0\r\n: x\r\n\r\n", HeaderName),
            (
                b"OPTIONS sip:a@b SIP/2.0\r\n  \t: x\r\n\r\n",
                UnexpectedContinuation,
            ),
            (b"OPTIONS sip:a@b SIP/2.0\r\nVia x\r\n\r\n", HeaderSyntax),
            (
                b"OPTIONS sip:a@b SIP/2.0\r\nTo<sip:a@b>: x\r\n\r\n",
                HeaderName,
            ),
            (
                b"OPTIONS sip:a@b SIP/2.0\r\n\xc3\xa9t\xc3\xa9: x\r\n\r\n",
                HeaderName,
            ),
            // Continuation first.
            (
                b"OPTIONS sip:a@b SIP/2.0\r\n folded: x\r\nVia: y\r\n\r\n",
                UnexpectedContinuation,
            ),
            (b"OPTIONS sip:a@b SIP/2.0\n\tx\n\n", UnexpectedContinuation),
        ];
        for (input, want) in cases {
            assert_eq!(
                Message::parse(input).map(|_| ()),
                Err(*want),
                "input {:?}",
                input.escape_ascii().to_string()
            );
        }
    }

    #[test]
    fn control_char_anywhere_in_head_is_rejected() {
        for sample in SAMPLES {
            let head = Message::parse(sample).unwrap().header_section_len();
            for i in 0..head {
                if matches!(sample[i], b'\r' | b'\n') {
                    continue;
                }
                for bad in [0u8, 0x01, 0x0b, 0x1f, 0x7f, b'\r'] {
                    if bad == b'\r' && (i == 0 || sample[i + 1] == b'\n') {
                        // A leading CR is skipped like a keep-alive; a CR
                        // before LF is a line end.
                        continue;
                    }
                    let mut v = sample.to_vec();
                    v[i] = bad;
                    assert_eq!(err(&v), ParseError::ControlChar, "byte {i} = {bad:#x}");
                }
            }
            // The body may contain anything.
            let mut v = sample.to_vec();
            if v.len() > head {
                v[head] = 0;
                assert!(Message::parse(&v).is_ok());
            }
        }
    }

    #[test]
    fn too_many_headers() {
        let mut msg = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            msg.extend_from_slice(format!("X-H{i}: {i}\r\n").as_bytes());
        }
        msg.extend_from_slice(b"\r\n");
        assert_eq!(err(&msg), ParseError::TooManyHeaders);
    }

    #[test]
    fn too_large() {
        let mut msg = b"MESSAGE sip:a@b SIP/2.0\r\n\r\n".to_vec();
        msg.resize(70_000, b'z');
        assert_eq!(err(&msg), ParseError::TooLarge);
        msg.truncate(MAX_MESSAGE_LEN + 1);
        assert_eq!(err(&msg), ParseError::TooLarge);
    }

    #[test]
    fn errors_are_small_and_display() {
        assert_eq!(core::mem::size_of::<ParseError>(), 1);
        assert_eq!(
            ParseError::NoHeaderEnd.to_string(),
            "header section not terminated by an empty line"
        );
    }

    // ---- helpers -------------------------------------------------------

    /// (value, parameter name, expected parameter value).
    type ParamCase = (&'static [u8], &'static [u8], Option<&'static [u8]>);
    /// (value, expected sequence number and method).
    type CseqCase = (&'static [u8], Option<(u32, &'static [u8])>);

    #[test]
    fn name_addr_uri_cases() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (b"\"Bob\" <sip:bob@h>;tag=1", Some(b"sip:bob@h")),
            (b"sip:bob@h;tag=1", Some(b"sip:bob@h")),
            (b"  sip:bob@h  ", Some(b"sip:bob@h")),
            (b"<sip:bob@h>", Some(b"sip:bob@h")),
            (
                b"Bob Smith <sips:bob@h:5061;transport=tls>;tag=x",
                Some(b"sips:bob@h:5061;transport=tls"),
            ),
            (b"\"A <weird>; name\" <sip:x@y>;tag=2", Some(b"sip:x@y")),
            (b"\"say \\\"<hi>\\\"\" <tel:+1555>", Some(b"tel:+1555")),
            (b"\"a,b\" <sip:c@d>, <sip:e@f>", Some(b"sip:c@d")),
            (b"sip:a@b, sip:c@d", Some(b"sip:a@b")),
            (b"< sip:a@b >", Some(b"sip:a@b")),
            (b"*", Some(b"*")),
            (b"\"Bob\"", None),
            (b"\"Bob <sip:bob@h>", None),
            (b"<sip:bob@h", None),
            (b"<>", None),
            (b"", None),
            (b"   ", None),
            (b";tag=1", None),
        ];
        for (input, want) in cases {
            assert_eq!(name_addr_uri(input), *want, "{}", input.escape_ascii());
        }
    }

    #[test]
    fn uri_user_cases() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (b"sip:alice:pw@host;x", Some(b"alice")),
            (b"sip:alice@host", Some(b"alice")),
            (b"SIP:Alice@host", Some(b"Alice")),
            (b"sips:bob@secure.example.com:5061", Some(b"bob")),
            (b"sip:host", None),
            (b"sip:host:5060;transport=udp", None),
            (b"sip:@host", None),
            (b"sip::pw@host", None),
            (b"tel:+123", Some(b"+123")),
            (
                b"TEL:+1-555-0100;phone-context=example.com",
                Some(b"+1-555-0100"),
            ),
            (b"tel:", None),
            (b"tel:;x", None),
            (b"sip:%61lice@h", Some(b"%61lice")),
            (b"sip:user;sess=1@h", Some(b"user;sess=1")),
            (b"mailto:a@b", None),
            (b"sip", None),
            (b"", None),
        ];
        for (input, want) in cases {
            assert_eq!(uri_user(input), *want, "{}", input.escape_ascii());
        }
    }

    #[test]
    fn header_param_cases() {
        let cases: &[ParamCase] = &[
            (b"<sip:a@b>;tag=abc", b"tag", Some(b"abc")),
            (b"<sip:a@b>;TAG=abc", b"tag", Some(b"abc")),
            (b"<sip:a@b> ; tag = abc ;lr", b"tag", Some(b"abc")),
            (b"<sip:a@b>;lr;tag=abc", b"lr", Some(b"")),
            (b"<sip:a@b;tag=inner>", b"tag", None),
            (b"<sip:a@b;tag=inner>;tag=outer", b"tag", Some(b"outer")),
            (b"\"x;tag=no\" <sip:a@b>", b"tag", None),
            (b"\"x;tag=no\" <sip:a@b>;tag=yes", b"tag", Some(b"yes")),
            (b"\"a>b\" <sip:a@b>;tag=q", b"tag", Some(b"q")),
            (b"sip:a@b;tag=1", b"tag", Some(b"1")),
            (b"sip:a@b", b"tag", None),
            (b"<sip:a@b>", b"tag", None),
            (b"<sip:a@b>;tagx=1", b"tag", None),
            (b"<sip:a@b>;x=\"q;tag=2\";tag=3", b"tag", Some(b"3")),
            (
                b"<sip:a@b>;+sip.instance=\"<urn:uuid:1>\"",
                b"+sip.instance",
                Some(b"\"<urn:uuid:1>\""),
            ),
            (b"<sip:a@b>;tag=1, <sip:c@d>;tag=2", b"tag", Some(b"1")),
            (b"<sip:a@b>, <sip:c@d>;tag=2", b"tag", None),
            (b"<sip:a@b>;expires=", b"expires", Some(b"")),
            (b"<sip:a@b;tag=x", b"tag", None),
            (b"", b"tag", None),
            (b";", b"", Some(b"")),
        ];
        for (input, name, want) in cases {
            assert_eq!(
                header_param(input, name),
                *want,
                "{} {}",
                input.escape_ascii(),
                name.escape_ascii()
            );
        }
    }

    #[test]
    fn cseq_cases() {
        let cases: &[CseqCase] = &[
            (b"  101 REGISTER", Some((101, b"REGISTER"))),
            (b"1 INVITE", Some((1, b"INVITE"))),
            (b"4294967295\tACK ", Some((u32::MAX, b"ACK"))),
            (b"4294967296 ACK", None),
            (b"101REGISTER", None),
            (b"101", None),
            (b"101 ", None),
            (b"REGISTER", None),
            (b"-1 BYE", None),
            (b"1 BYE extra", None),
            (b"1 BY(E", None),
            (b"", None),
        ];
        for (input, want) in cases {
            assert_eq!(cseq(input), *want, "{}", input.escape_ascii());
        }
    }

    #[test]
    fn split_list_cases() {
        let v: Vec<_> = split_list(b" a , \"x,y\" <sip:b,c>;p=1 ,, <d>").collect();
        assert_eq!(v, [&b"a"[..], b"\"x,y\" <sip:b,c>;p=1", b"<d>"]);
        assert_eq!(split_list(b"").count(), 0);
        assert_eq!(split_list(b" , ,").count(), 0);
        assert_eq!(split_list(b"\"unterminated, quote").count(), 1);
    }

    // ---- robustness ----------------------------------------------------

    #[test]
    fn samples_parse_and_exercise() {
        for s in SAMPLES {
            assert!(Message::parse(s).is_ok(), "{}", s.escape_ascii());
            exercise(s);
        }
    }

    #[test]
    fn truncation_at_every_length_never_panics() {
        for s in SAMPLES {
            for len in 0..=s.len() {
                exercise(&s[..len]);
            }
        }
    }

    #[test]
    fn truncated_messages_give_expected_errors() {
        // Cut inside the header section: never a successful parse.
        let hs = Message::parse(REGISTER).unwrap().header_section_len();
        for len in 0..hs {
            let e = err(&REGISTER[..len]);
            assert!(
                matches!(e, ParseError::Empty | ParseError::NoHeaderEnd),
                "len {len}: {e:?}"
            );
        }
        // Cut inside the body of a message with Content-Length.
        let hs = Message::parse(INVITE).unwrap().header_section_len();
        for len in hs..INVITE.len() {
            assert_eq!(err(&INVITE[..len]), ParseError::BodyTruncated);
        }
    }

    /// Fragments that make random inputs look enough like SIP to get past
    /// the start line.
    fn fragment() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => prop::sample::select(vec![
                &b"\r\n"[..], b"\n", b"\r", b" ", b"\t", b":", b";", b",", b"\"", b"\\",
                b"<", b">", b"=", b"@", b"\0", b"\r\n ", b"\r\n\r\n",
                b"INVITE sip:a@b SIP/2.0\r\n", b"SIP/2.0 200 OK\r\n", b"REGISTER ",
                b"sip:", b"sips:", b"tel:+1", b"SIP/2.0", b"Via: ", b"v: ", b"l: ",
                b"Content-Length: ", b"From: ", b"To: ", b"Contact: ", b"CSeq: ",
                b"Call-ID: ", b"tag=", b"branch=", b"0", b"1", b"10", b"4294967296",
                b"\"Bob\" <sip:bob@h>;tag=1", b"SIP/2.0/UDP h;branch=z9hG4bK,x",
            ]).prop_map(|s| s.to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..8),
        ]
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Flip(usize, u8),
        Set(usize, u8),
        Insert(usize, u8),
        Delete(usize),
        Truncate(usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, 1 << bit)),
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
            (
                any::<usize>(),
                prop::sample::select(vec![
                    b'\r', b'\n', b' ', b'\t', b':', b',', b'"', b'<', b'>', b';', 0, b'a', b'9'
                ])
            )
                .prop_map(|(i, b)| Mutation::Insert(i, b)),
            any::<usize>().prop_map(Mutation::Delete),
            any::<usize>().prop_map(Mutation::Truncate),
        ]
    }

    fn apply(buf: &mut Vec<u8>, m: &Mutation) {
        let n = buf.len();
        match *m {
            Mutation::Flip(i, mask) if n > 0 => buf[i % n] ^= mask,
            Mutation::Set(i, b) if n > 0 => buf[i % n] = b,
            Mutation::Insert(i, b) => buf.insert(i % (n + 1), b),
            Mutation::Delete(i) if n > 0 => {
                buf.remove(i % n);
            }
            Mutation::Truncate(i) => buf.truncate(i % (n + 1)),
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn arbitrary_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..2048)) {
            exercise(&buf);
        }

        #[test]
        fn sip_like_soup_never_panics(parts in prop::collection::vec(fragment(), 0..64)) {
            let buf: Vec<u8> = parts.concat();
            exercise(&buf);
        }

        #[test]
        fn helpers_never_panic(v in prop::collection::vec(fragment(), 0..16), name in fragment()) {
            let v = v.concat();
            let ok = |s: &[u8]| -> Result<(), TestCaseError> {
                prop_assert!(within(&v, s));
                Ok(())
            };
            if let Some(u) = name_addr_uri(&v) { ok(u)?; }
            if let Some(u) = uri_user(&v) { ok(u)?; }
            if let Some(p) = header_param(&v, &name) { ok(p)?; }
            if let Some((_, m)) = cseq(&v) { ok(m)?; }
            for item in split_list(&v) { ok(item)?; }
        }

        #[test]
        fn mutated_samples_never_panic(
            idx in 0..SAMPLES.len(),
            muts in prop::collection::vec(mutation(), 1..8),
        ) {
            let mut buf = SAMPLES[idx].to_vec();
            for m in &muts {
                apply(&mut buf, m);
            }
            exercise(&buf);
        }

        #[test]
        fn extra_trailing_bytes_ignored_with_content_length(
            idx in 0..SAMPLES.len(),
            extra in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let orig = Message::parse(SAMPLES[idx]).unwrap();
            let mut buf = SAMPLES[idx].to_vec();
            buf.extend_from_slice(&extra);
            let m = Message::parse(&buf).unwrap();
            prop_assert_eq!(m.header_count(), orig.header_count());
            if orig.content_length().is_some() {
                prop_assert_eq!(m.body(), orig.body());
            }
        }

        #[test]
        fn header_name_matches_reference(
            idx in 0..ALL_NAMES.len(),
            flips in prop::collection::vec(any::<bool>(), 24),
            junk in prop::collection::vec(any::<u8>(), 0..24),
            use_junk in any::<bool>(),
        ) {
            let name: Vec<u8> = if use_junk {
                junk
            } else {
                ALL_NAMES[idx]
                    .as_str()
                    .bytes()
                    .zip(&flips)
                    .map(|(b, &f)| if f { b.to_ascii_uppercase() } else { b.to_ascii_lowercase() })
                    .collect()
            };
            prop_assert_eq!(HeaderName::from_bytes(&name), reference_name(&name));
            if !use_junk {
                prop_assert_eq!(HeaderName::from_bytes(&name), ALL_NAMES[idx]);
            }
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Messages built from well-formed parts parse back to those parts.
        #[test]
        fn built_messages_round_trip(
            headers in prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(ALL_NAMES.iter().map(|n| n.as_str()).collect::<Vec<_>>())
                            .prop_filter("no Content-Length", |n| *n != "Content-Length")
                            .prop_map(String::from),
                        "[A-Za-z0-9!%*_+`'~.-]{1,24}"
                            .prop_filter("no Content-Length", |n| HeaderName::from_bytes(n.as_bytes()) != HeaderName::ContentLength),
                    ],
                    "[ \t]{0,2}",
                    "[!-~]([ -~]{0,40}[!-~])?|",
                ),
                0..MAX_HEADERS,
            ),
            body in prop::collection::vec(any::<u8>(), 0..200),
            bare_lf in any::<bool>(),
            with_length in any::<bool>(),
            trailing in prop::collection::vec(any::<u8>(), 0..20),
        ) {
            let eol: &[u8] = if bare_lf { b"\n" } else { b"\r\n" };
            let mut buf = b"MESSAGE sip:bob@example.com SIP/2.0".to_vec();
            buf.extend_from_slice(eol);
            for (name, ws, value) in &headers {
                buf.extend_from_slice(name.as_bytes());
                buf.extend_from_slice(ws.as_bytes());
                buf.extend_from_slice(b": ");
                buf.extend_from_slice(value.as_bytes());
                buf.extend_from_slice(eol);
            }
            if with_length && headers.len() < MAX_HEADERS {
                buf.extend_from_slice(format!("Content-Length: {}", body.len()).as_bytes());
                buf.extend_from_slice(eol);
            }
            buf.extend_from_slice(eol);
            let header_len = buf.len();
            buf.extend_from_slice(&body);
            let with_length = with_length && headers.len() < MAX_HEADERS;
            if with_length {
                buf.extend_from_slice(&trailing);
            }
            let m = Message::parse(&buf).unwrap();
            prop_assert_eq!(m.method(), Some(Method::Message));
            prop_assert_eq!(m.header_section_len(), header_len);
            prop_assert_eq!(m.body(), &body[..]);
            prop_assert_eq!(m.header_count(), headers.len() + usize::from(with_length));
            for (h, (name, _, value)) in m.headers().zip(&headers) {
                prop_assert_eq!(h.raw_name, name.as_bytes());
                prop_assert_eq!(h.value, value.as_bytes());
                prop_assert_eq!(h.name, reference_name(name.as_bytes()));
            }
            exercise(&buf);
        }
    }
}
