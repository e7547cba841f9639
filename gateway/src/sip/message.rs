//! The zero-copy, checked view of one SIP message (RFC 3261): [`Message`].
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
//!   fixed-capacity table of at most [`MAX_HEADERS`] rows of 8 bytes each;
//!   nothing is copied and nothing is allocated. `Message` is `Copy`.
//! * Every header's [`HeaderName`] is resolved once, while parsing, so lookups
//!   are a scan over a small table of one-byte tags.
//! * The start line and header section contain no control characters other
//!   than HT, the CR LF / bare LF line structure and, inside a quoted string,
//!   one escaped by a backslash (an RFC 3261 quoted-pair, as the NUL, BEL and
//!   DEL in RFC 4475's `intmeth`); the body may contain anything.
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
//! ([`name_addr_uri`](super::name_addr_uri), [`uri_user`](super::uri_user),
//! [`header_param`](super::header_param), [`cseq`](super::cseq),
//! [`split_list`]) accept any byte slice as well and return `None` rather than
//! panic. Every slice handed out borrows from the input.
//!
//! # Leniency
//!
//! Bare LF line endings and obs-fold continuation lines are accepted, and so
//! are CR/LF bytes before the start line (RFC 3261 §7.5, and the CRLF
//! keep-alives of RFC 5626): a buffer of only CR/LF bytes is
//! [`ParseError::Empty`].
//!
//! # Fast paths
//!
//! [`Message::parse`] and [`header_param`](super::header_param) each have a fast path for the
//! common shape of their input and a plain reference implementation that
//! defines the behaviour. The fast path works a word (8 bytes, "SWAR") or a
//! 16-byte block at a time: one pass per line finds the line end and checks
//! for control characters together, header names are resolved with one
//! table lookup and one masked compare, and most lines are handled inside a
//! 64-byte window without per-byte bounds checks. It either returns exactly
//! what the reference would, or gives up and leaves the input to the
//! reference, which alone produces errors: error variants and their
//! precedence are the reference's by construction. Property tests compare
//! the two on generated and mutated inputs.
#![forbid(unsafe_code)]

use core::fmt;

use memchr::{memchr, memchr_iter};

use super::chars::is_token;
use super::num::parse_u32;
use super::swar::*;
use super::values::{split_list, starts_with_ignore_case};

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
        resolve_name(name, name.len())
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

/// Longest known name plus one (the longest, `Proxy-Authorization`, has 19
/// bytes).
const PACKED_NAME_LEN: usize = 20;

/// A long-form name of `n` bytes packed for branch-free case-insensitive
/// comparison: the name is read as three little-endian words, at offsets
/// `0`, `n - 8` and `8` for a name of more than 16 bytes, `0`, `n - 8` and
/// `0` for one of 9 to 16, and three times at `0` for a shorter one, whose
/// words keep only their low `n` bytes (`mask`); the three words cover all
/// `n` bytes. `lower` holds those words of the lower-cased name, `fold` has
/// `0x20` at each letter, so a name's words `w` match iff
/// `w & mask | fold == lower` for all three (either case of a letter
/// matches; `-` must be exact). The caller has already checked that the
/// lengths agree.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct PackedName {
    lower: [u64; 3],
    fold: [u64; 3],
    mask: u64,
}

/// The offsets [`PackedName`] reads a name of `n` bytes at.
const fn name_word_offsets(n: usize) -> [usize; 3] {
    if n > 16 {
        [0, n - 8, 8]
    } else if n > 8 {
        [0, n - 8, 0]
    } else {
        [0, 0, 0]
    }
}

/// The 8 bytes of `src` at `at`, or, for a name of at most 8 bytes at the
/// very end of `src`, its `n - at` bytes from `at`, zero-extended.
#[inline(always)]
fn name_word(src: &[u8], at: usize, n: usize) -> u64 {
    match full_word(src, at) {
        Some(w) => w,
        None => src
            .get(at..n)
            .unwrap_or(&[])
            .iter()
            .rev()
            .fold(0, |w, &b| (w << 8) | u64::from(b)),
    }
}

/// Resolves the header name `src[..n]` (`n <= src.len()`): the body of
/// [`HeaderName::from_bytes`]. `src` may go on past the name (the parser
/// passes the whole rest of the buffer), which lets a short name be read as
/// one word.
#[inline(always)]
fn resolve_name(src: &[u8], n: usize) -> HeaderName {
    resolve_name_head(src, n, name_word(src, 0, n))
}

/// [`resolve_name`] given `head`, the first word of `src` as [`name_word`]
/// reads it.
#[inline(always)]
fn resolve_name_head(src: &[u8], n: usize, head: u64) -> HeaderName {
    if n < 2 {
        return match n {
            1 => COMPACT_NAMES[usize::from(head as u8)],
            _ => HeaderName::Other,
        };
    }
    // The one candidate for this length and first letters, then one
    // compare (an `Other` candidate's packed name never matches).
    let candidate = CANDIDATES[n.min(CANDIDATE_ROWS - 1)][candidate_column(head)];
    let packed = &PACKED_NAMES[candidate as usize % PACKED_NAMES.len()];
    let head = head & packed.mask;
    let diff = if n > 8 {
        let [_, second, third] = name_word_offsets(n);
        ((head | packed.fold[0]) ^ packed.lower[0])
            | ((name_word(src, second, n) | packed.fold[1]) ^ packed.lower[1])
            | ((name_word(src, third, n) | packed.fold[2]) ^ packed.lower[2])
    } else {
        (head | packed.fold[0]) ^ packed.lower[0]
    };
    if diff == 0 {
        candidate
    } else {
        HeaderName::Other
    }
}

/// [`PackedName`]s of [`ALL_NAMES`], indexed by `HeaderName as usize`.
const PACKED_NAMES: [PackedName; 32] = {
    // Rows past the known names (`Other` and up) never match: their `mask`
    // clears every word, which then differs from `lower`.
    let never = PackedName {
        lower: [u64::MAX; 3],
        fold: [0; 3],
        mask: 0,
    };
    let mut table = [never; 32];
    assert!(HeaderName::Other as usize == ALL_NAMES.len() && ALL_NAMES.len() < 32);
    let mut n = 0;
    while n < ALL_NAMES.len() {
        let name = ALL_NAMES[n].as_str().as_bytes();
        let len = name.len();
        assert!(ALL_NAMES[n] as usize == n && len >= 2 && len < PACKED_NAME_LEN);
        let at = name_word_offsets(len);
        let k = if len < 8 { len } else { 8 };
        table[n].lower = [0; 3];
        table[n].mask = if len < 8 {
            (1 << (8 * len)) - 1
        } else {
            u64::MAX
        };
        let mut w = 0;
        while w < 3 {
            let mut i = 0;
            while i < k {
                let b = name[at[w] + i];
                table[n].lower[w] |= (b.to_ascii_lowercase() as u64) << (8 * i);
                if b.is_ascii_alphabetic() {
                    table[n].fold[w] |= 0x20 << (8 * i);
                }
                i += 1;
            }
            w += 1;
        }
        n += 1;
    }
    table
};

/// Rows of [`CANDIDATES`]: names of this many bytes or more have none.
const CANDIDATE_ROWS: usize = 32;

/// The column of [`CANDIDATES`] for a name whose first word is `head`: the
/// low five bits of the first byte (the same for both cases of a letter)
/// and bit 1 of the second, which tells `Call-ID` (`a`) from `Contact`
/// (`o`), the only two names that share a length and a first letter.
#[inline(always)]
const fn candidate_column(head: u64) -> usize {
    ((head & 0x1f) | ((head >> 4) & 0x20)) as usize
}

/// The long form to try for a name, by length (capped at
/// [`CANDIDATE_ROWS`] - 1) and [`candidate_column`]; [`HeaderName::Other`]
/// where there is none.
const CANDIDATES: [[HeaderName; 64]; CANDIDATE_ROWS] = {
    let mut table = [[HeaderName::Other; 64]; CANDIDATE_ROWS];
    let mut n = 0;
    while n < ALL_NAMES.len() {
        let name = ALL_NAMES[n].as_str().as_bytes();
        let mut column = 0;
        while column < 64 {
            let head = name[0] as u64 | ((name[1] as u64) << 8);
            let low = column & 0x1f;
            let second_bit = column & 0x20;
            let own = candidate_column(head);
            // Both halves, unless the second letter decides (it does for
            // exactly the one pair that shares a slot).
            let shares = matches!(ALL_NAMES[n], HeaderName::CallId | HeaderName::Contact);
            if low == own & 0x1f && (!shares || second_bit == own & 0x20) {
                assert!(matches!(table[name.len()][column], HeaderName::Other));
                table[name.len()][column] = ALL_NAMES[n];
            }
            column += 1;
        }
        n += 1;
    }
    table
};

/// The one-letter compact forms (RFC 3261 §7.3.3 and IANA), by byte, in
/// either case; [`HeaderName::Other`] for every other byte.
const COMPACT_NAMES: [HeaderName; 256] = {
    let forms: [(u8, HeaderName); 15] = [
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
    let mut table = [HeaderName::Other; 256];
    let mut i = 0;
    while i < forms.len() {
        let (c, name) = forms[i];
        table[c as usize] = name;
        table[c.to_ascii_uppercase() as usize] = name;
        i += 1;
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

/// One row of the header offset table, packed into 8 bytes (so the whole
/// table is 512): bits 0-15 the offset of the raw name (the start of its
/// header line), 16-31 and 32-47 the value's range, 48-55 the
/// [`HeaderName`] (`as u8`), 56-63 the length of the raw name, or
/// [`LONG_NAME`] when it is that long or longer (the name is then found
/// again from its start). Packed by hand so that building a row is a few
/// shifts and ORs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry(u64);

/// `Entry`'s raw name length for a name at least this long.
const LONG_NAME: u8 = u8::MAX;

impl Entry {
    /// A row for the header whose line starts at `start`, with a raw name of
    /// `name_len` bytes and the value `value_start..value_end`; all offsets
    /// are at most [`MAX_MESSAGE_LEN`], which `parse` checks first.
    #[inline(always)]
    fn new(
        name: HeaderName,
        start: usize,
        name_len: usize,
        value_start: usize,
        value_end: usize,
    ) -> Entry {
        let name_len = name_len.min(usize::from(LONG_NAME));
        Entry(
            (start as u64 & 0xffff)
                | ((value_start as u64 & 0xffff) << 16)
                | ((value_end as u64 & 0xffff) << 32)
                | ((name as u64) << 48)
                | ((name_len as u64) << 56),
        )
    }

    fn start(self) -> usize {
        usize::from(self.0 as u16)
    }

    fn value_start(self) -> usize {
        usize::from((self.0 >> 16) as u16)
    }

    fn value_end(self) -> usize {
        usize::from((self.0 >> 32) as u16)
    }

    /// `HeaderName as u8`.
    fn name_tag(self) -> u8 {
        (self.0 >> 48) as u8
    }

    fn name(self) -> HeaderName {
        ALL_NAMES
            .get(usize::from(self.name_tag()))
            .copied()
            .unwrap_or(HeaderName::Other)
    }

    fn name_len(self) -> u8 {
        (self.0 >> 56) as u8
    }

    fn with_value(self, value_start: usize, value_end: usize) -> Entry {
        let keep = self.0 & !(0xffff_ffff << 16);
        Entry(keep | ((value_start as u64 & 0xffff) << 16) | ((value_end as u64 & 0xffff) << 32))
    }
}

/// Filler for unused table rows; all-zero bytes so the table initialises with
/// a plain memset. Rows at or past the header count are never read.
const EMPTY_ENTRY: Entry = Entry(0);

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
/// of offsets (about 560 bytes in all), so it never allocates, is cheap to
/// copy, and no accessor can panic.
#[derive(Clone, Copy)]
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
        // The fast path fills the message inside `out`, which is then
        // returned as it is (one copy of the table, on the way out).
        let mut out = Ok(Message::empty(buf));
        if let Ok(msg) = &mut out {
            if msg.parse_fast().is_some() {
                return out;
            }
        }
        Message::parse_reference(buf)
    }

    /// A message over `buf` with nothing in it yet, for the fast path to
    /// fill.
    #[inline(always)]
    fn empty(buf: &'a [u8]) -> Message<'a> {
        Message {
            buf,
            start: StartSpans::Response {
                code: 0,
                reason: Span::default(),
            },
            entries: [EMPTY_ENTRY; MAX_HEADERS],
            entry_count: 0,
            header_section_len: 0,
            body: Span::default(),
            content_length: None,
        }
    }

    /// The fast path of [`Message::parse`], for a message of the common
    /// shape (a request line, or any start line the reference accepts; CR LF
    /// or bare LF line ends; no HT or other control character in the start
    /// line and header section; no obs-fold; no white space before a
    /// header's colon; at most [`MAX_HEADERS`] headers; a valid, consistent
    /// and satisfied `Content-Length`): fills the empty `self` with exactly
    /// what [`Message::parse_reference`] would return (a property test checks
    /// this), or returns `None` to leave anything else, errors included, to
    /// it (`self` is then garbage).
    #[inline(always)]
    fn parse_fast(&mut self) -> Option<()> {
        let buf = self.buf;
        let (start, pos) = fast_start_line(buf)?;
        self.start = start;
        let (count, header_end) = fast_headers(buf, pos, &mut self.entries)?;
        // Content-Length: every occurrence valid and equal.
        for entry in self.entries.get(..count)? {
            if entry.name_tag() == HeaderName::ContentLength as u8 {
                let value = buf.get(entry.value_start()..entry.value_end());
                let n = parse_u32(value?)?;
                if self.content_length.is_some_and(|prev| prev != n) {
                    return None;
                }
                self.content_length = Some(n);
            }
        }
        let body_end = match self.content_length {
            None => buf.len(),
            Some(n) => header_end
                .checked_add(n as usize)
                .filter(|&e| e <= buf.len())?,
        };
        self.entry_count = count as u8;
        self.header_section_len = header_end as u16;
        self.body = Span::new(header_end, body_end);
        Some(())
    }

    /// The reference parser: line by line, exactly as specified, with every
    /// error in its documented order. [`Message::parse`] falls back to it
    /// whenever the fast path is unsure.
    fn parse_reference(buf: &'a [u8]) -> Result<Message<'a>, ParseError> {
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
            if has_bad_ctl_multiline(buf.get(headers_at..upto).unwrap_or(&[])) {
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
                    let start = if prev.value_start() == prev.value_end() {
                        s
                    } else {
                        prev.value_start()
                    };
                    *prev = prev.with_value(start, e);
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
                *slot = Entry::new(name, pos, name_end, s, e);
                count += 1;
            }
            pos = nl + 1;
        };

        // One vectorised pass over the whole header section: no control
        // characters (but quoted-pairs), and every CR is the CR of a CR LF
        // line end.
        let section = &buf[headers_at..header_end];
        if has_bad_ctl_multiline(section) {
            return Err(ParseError::ControlChar);
        }

        // Content-Length: every occurrence valid and equal.
        let mut content_length: Option<u32> = None;
        for entry in &entries[..count] {
            if entry.name_tag() != HeaderName::ContentLength as u8 {
                continue;
            }
            let value = &buf[entry.value_start()..entry.value_end()];
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
            name: e.name(),
            raw_name: self.raw_name(e),
            value: self.value(e),
        })
    }

    /// The header lines whose name `keep` accepts, in message order, each as
    /// written from the start of its name to the end of its (possibly folded)
    /// value, without the line end. Cheaper than [`Message::headers`] when
    /// only a few names are wanted (what a reply copies).
    pub fn lines_where(
        &self,
        keep: fn(HeaderName) -> bool,
    ) -> impl Iterator<Item = (HeaderName, &'a [u8])> + '_ {
        self.table()
            .iter()
            .filter(move |e| keep(e.name()))
            .map(move |e| {
                (
                    e.name(),
                    self.buf.get(e.start()..e.value_end()).unwrap_or(&[]),
                )
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
            .filter(move |e| e.name_tag() == name as u8)
            .map(move |e| self.value(e))
    }

    /// The value of the first header whose name matches `name`:
    /// case-insensitive, compact forms resolved (`b"i"` finds `Call-ID`);
    /// unrecognised names are compared with the raw names as written.
    pub fn header_by_name(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.headers_by_name(name).next()
    }

    /// The values of every header whose name matches `name` as [`Message::header_by_name`]
    /// matches it, in order.
    pub fn headers_by_name<'m>(&'m self, name: &'m [u8]) -> impl Iterator<Item = &'a [u8]> + 'm {
        let resolved = HeaderName::from_bytes(name);
        self.table()
            .iter()
            .filter(move |e| {
                e.name_tag() == resolved as u8
                    && (resolved != HeaderName::Other
                        || self.raw_name(e).eq_ignore_ascii_case(name))
            })
            .map(move |e| self.value(e))
    }

    /// Whether Via, From, To, Call-ID and CSeq are all present: the headers every request
    /// carries (RFC 3261 §8.1.1) and every reply to it copies.
    pub fn has_required_headers(&self) -> bool {
        [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ]
        .iter()
        .all(|&h| self.header(h).is_some())
    }

    /// How many headers are called `name`.
    pub fn count(&self, name: HeaderName) -> usize {
        self.table()
            .iter()
            .filter(|e| e.name_tag() == name as u8)
            .count()
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

    fn value(&self, e: &Entry) -> &'a [u8] {
        self.buf.get(e.value_start()..e.value_end()).unwrap_or(&[])
    }

    /// The raw name of `e`: stored as a length when shorter than
    /// [`LONG_NAME`], otherwise found again as the bytes before the line's
    /// first `:`, less trailing SP/HT (exactly what `parse` stored).
    fn raw_name(&self, e: &Entry) -> &'a [u8] {
        let start = e.start();
        let len = if e.name_len() == LONG_NAME {
            let line = self.buf.get(start..).unwrap_or(&[]);
            let mut end = find_colon(line).unwrap_or(0);
            while end > 0 && line.get(end - 1).is_some_and(|&b| is_ws(b)) {
                end -= 1;
            }
            end
        } else {
            usize::from(e.name_len())
        };
        self.buf.get(start..start + len).unwrap_or(&[])
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

/// Fast path for the header section from `pos` on: fills `entries` and
/// returns how many there are and where the section ends (after its empty
/// line), if every line is `token ":" value` with no control character (HT
/// included) before its CR LF or LF (so no obs-fold and no white space
/// before the colon) and there are at most [`MAX_HEADERS`]; `None` for
/// anything else. Out of line, so that its loop gets the registers (the
/// loop itself is [`fast_header_rows`]).
#[inline(never)]
fn fast_headers(
    buf: &[u8],
    pos: usize,
    entries: &mut [Entry; MAX_HEADERS],
) -> Option<(usize, usize)> {
    let mut count = 0;
    let end = fast_header_rows(buf, pos, entries, &mut count)?;
    Some((count, end))
}

/// The loop of [`fast_headers`]: fills `entries`, counting them in `count`,
/// and returns where the header section ends. (Kept apart from
/// `fast_headers`, with the count passed by reference, because that is the
/// shape the optimiser compiles best.)
#[inline(always)]
fn fast_header_rows(
    buf: &[u8],
    mut pos: usize,
    entries: &mut [Entry; MAX_HEADERS],
    count: &mut usize,
) -> Option<usize> {
    let mut n = 0usize;
    let mut padded: [u8; WINDOW];
    let end = loop {
        // Most lines fit a window of the next 64 bytes; near the end of the
        // buffer the window is a zero-padded copy (a zero byte is a control
        // character, so no line runs into the padding).
        let win = match buf.get(pos..) {
            Some(rest) => match rest.first_chunk::<WINDOW>() {
                Some(win) => Some(win),
                None if rest.len() >= 8 => {
                    padded = [0; WINDOW];
                    if let Some(head) = padded.get_mut(..rest.len()) {
                        head.copy_from_slice(rest);
                    }
                    Some(&padded)
                }
                None => None,
            },
            None => None,
        };
        if let Some(win) = win.filter(|win| win[0] >= 0x20) {
            match window_line(win, pos) {
                WindowLine::Row(entry, len) => {
                    *entries.get_mut(n)? = entry;
                    n += 1;
                    pos += len;
                    continue;
                }
                WindowLine::Long { name, colon, clean } => {
                    let (entry, next) = finish_line(buf, pos, name, colon, clean)?;
                    *entries.get_mut(n)? = entry;
                    n += 1;
                    pos = next;
                    continue;
                }
                WindowLine::Other => {}
            }
        }
        match any_line(buf, pos)? {
            Line::End(end) => break end,
            Line::Header(entry, next) => {
                *entries.get_mut(n)? = entry;
                n += 1;
                pos = next;
            }
        }
    };
    *count = n;
    Some(end)
}

/// Bytes [`window_line`] looks at.
const WINDOW: usize = 64;

/// The little-endian word of `win` at `at`, which is at most
/// `WINDOW - 8` (clamped, so indexing never fails).
#[inline(always)]
fn window_word(win: &[u8; WINDOW], at: usize) -> u64 {
    let at = at.min(WINDOW - 8);
    let mut word = [0u8; 8];
    word.copy_from_slice(&win[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The common header line, at the start of `win` (at `pos` in the buffer;
/// its first byte is not a control character): a known name of at most 15
/// bytes right before the colon, at most one SP before the value and none
/// after it, and the line end (CR LF or LF) within the window with no
/// control character (HT included) before it: its table row and length
/// (with its line end). A line going on past the window is finished by
/// [`finish_line`]; anything else is left to [`any_line`], which takes
/// every line exactly.
#[inline(always)]
fn window_line(win: &[u8; WINDOW], pos: usize) -> WindowLine {
    let head = window_word(win, 0);
    let colon = match eq_mask(head, b':') & HIGHS {
        0 => match eq_mask(window_word(win, 8), b':') & HIGHS {
            0 => return WindowLine::Other,
            m => 8 + (m.trailing_zeros() / 8) as usize,
        },
        m => (m.trailing_zeros() / 8) as usize,
    };
    // Known names are letters and '-': no SP, HT, control character, line
    // end or colon, so the name is `win[..colon]` exactly.
    let name = resolve_window_name(win, colon, head);
    if name == HeaderName::Other {
        return WindowLine::Other;
    }
    let value_at = colon + 1;
    let mut at = value_at;
    let end = loop {
        if at > WINDOW - 8 {
            return WindowLine::Long {
                name,
                colon,
                clean: at,
            };
        }
        let m = ctl_mask(window_word(win, at)) & HIGHS;
        if m != 0 {
            break at + (m.trailing_zeros() / 8) as usize;
        }
        at += 8;
    };
    let len = match win[end % WINDOW] {
        b'\r' if end + 1 < WINDOW && win[(end + 1) % WINDOW] == b'\n' => end + 2,
        b'\n' => end + 1,
        _ => return WindowLine::Other,
    };
    // One SP at most before the value and none after it; all blank is empty
    // at the value's start, as `trim_ws_range` has it.
    let start = value_at + usize::from(win[value_at % WINDOW] == b' ');
    let (start, end) = if start >= end {
        (value_at, value_at)
    } else if win[start % WINDOW] == b' ' || win[(end - 1) % WINDOW] == b' ' {
        return WindowLine::Other;
    } else {
        (start, end)
    };
    WindowLine::Row(Entry::new(name, pos, colon, pos + start, pos + end), len)
}

/// What [`window_line`] made of a line.
enum WindowLine {
    /// The line's table row and length (with its line end).
    Row(Entry, usize),
    /// A known name and its colon, and a value that goes on past the window,
    /// with no control character before `clean` (from the line start).
    Long {
        name: HeaderName,
        colon: usize,
        clean: usize,
    },
    /// Anything else: for [`any_line`].
    Other,
}

/// The rest of the header line at `pos` whose name is `name`, with its
/// colon at `pos + colon`, and no control character from there up to
/// `pos + clean`: its table row and where the next line starts; `None` if
/// the line ends in anything but CR LF or LF.
#[inline(always)]
fn finish_line(
    buf: &[u8],
    pos: usize,
    name: HeaderName,
    colon: usize,
    clean: usize,
) -> Option<(Entry, usize)> {
    let value_at = pos + colon + 1;
    let end = next_ctl(buf, pos + clean)?;
    let next = match buf.get(end..end + 2) {
        Some(b"\r\n") => end + 2,
        Some([b'\n', _]) => end + 1,
        None if buf.get(end) == Some(&b'\n') => end + 1,
        _ => return None,
    };
    let (s, e) = trim_sp(buf.get(value_at..end)?);
    Some((
        Entry::new(name, pos, colon, value_at + s, value_at + e),
        next,
    ))
}

/// [`resolve_name_head`] for a name `win[..n]` with `n <= 15`.
#[inline(always)]
fn resolve_window_name(win: &[u8; WINDOW], n: usize, head: u64) -> HeaderName {
    if n < 2 {
        return match n {
            1 => COMPACT_NAMES[usize::from(head as u8)],
            _ => HeaderName::Other,
        };
    }
    let candidate = CANDIDATES[n.min(CANDIDATE_ROWS - 1)][candidate_column(head)];
    let packed = &PACKED_NAMES[candidate as usize % PACKED_NAMES.len()];
    let head = head & packed.mask;
    let mut diff = (head | packed.fold[0]) ^ packed.lower[0];
    if n > 8 {
        // Names of 9 to 16 bytes: the third word repeats the first.
        diff |= (window_word(win, n - 8) | packed.fold[1]) ^ packed.lower[1];
    }
    if diff == 0 {
        candidate
    } else {
        HeaderName::Other
    }
}

/// One line of the header section, as [`any_line`] takes it.
enum Line {
    /// The empty line; the header section ends here.
    End(usize),
    /// A header's row, and where the next line starts.
    Header(Entry, usize),
}

/// Any line at `pos` of the header section, exactly; `None` for anything
/// the fast path does not take.
#[inline(never)]
fn any_line(buf: &[u8], pos: usize) -> Option<Line> {
    let Some(head) = full_word(buf, pos) else {
        // The last bytes: only the empty line (a short header line here is
        // left to the reference parser).
        return match buf.get(pos..)? {
            [b'\n', ..] => Some(Line::End(pos + 1)),
            [b'\r', b'\n', ..] => Some(Line::End(pos + 2)),
            _ => None,
        };
    };
    if (head as u8) < 0x20 {
        // Only the empty line ending the header section.
        return match head as u16 {
            0x0a0d => Some(Line::End(pos + 2)),
            w if w as u8 == b'\n' => Some(Line::End(pos + 1)),
            _ => None,
        };
    }
    // token ":" value. A known name is letters and '-'; an unknown one is
    // a token: either way no SP, HT, control character or line end, so a
    // continuation line, a colon-less line (whose first colon is in a later
    // line) and white space before the colon all fail here.
    let line = buf.get(pos..)?;
    let colon = match eq_mask(head, b':') & HIGHS {
        0 => find_colon(line)?,
        m => (m.trailing_zeros() / 8) as usize,
    };
    let name = resolve_name_head(line, colon, head);
    if name == HeaderName::Other && (colon == 0 || !line.get(..colon).is_some_and(is_token)) {
        return None;
    }
    let (entry, next) = finish_line(buf, pos, name, colon, colon + 1)?;
    Some(Line::Header(entry, next))
}

/// The range of `value` (no HT or line end in it) without leading and
/// trailing SP; all blank gives the empty range at its start, as
/// `trim_ws_range` has it.
#[inline(always)]
fn trim_sp(value: &[u8]) -> (usize, usize) {
    // Mostly one SP, then the value.
    let start = match value {
        [b' ', c, ..] if *c != b' ' => 1,
        [c, ..] if *c != b' ' => 0,
        _ => match value.iter().position(|&b| b != b' ') {
            Some(s) => s,
            None => return (0, 0),
        },
    };
    let end = match value.last() {
        Some(&c) if c != b' ' => value.len(),
        _ => value
            .iter()
            .rposition(|&b| b != b' ')
            .map_or(start, |e| e + 1),
    };
    (start, end)
}

/// Fast path for the start line: the checked start line and where the
/// header section starts, if the start line is followed by CR LF or LF, has
/// no control character (HT included) and is accepted; `None` for anything
/// else.
#[inline(always)]
fn fast_start_line(buf: &[u8]) -> Option<(StartSpans, usize)> {
    if buf.len() > MAX_MESSAGE_LEN {
        return None;
    }
    let first = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let end = next_ctl(buf, first)?;
    let next = match buf.get(end..end + 2) {
        Some(b"\r\n") => end + 2,
        Some([b'\n', _]) => end + 1,
        None if buf.get(end) == Some(&b'\n') => end + 1,
        _ => return None,
    };
    let start = match fast_request_line(buf, first, end) {
        Some(start) => start,
        None => parse_start_line(buf, first, end).ok()?,
    };
    Some((start, next))
}

/// `" SIP/2.0"`, lower-cased, as a little-endian word, and the bits that
/// fold its letters' case.
const VERSION_WORD: u64 = u64::from_le_bytes(*b" sip/2.0");
const VERSION_FOLD: u64 = u64::from_le_bytes([0, 0x20, 0x20, 0x20, 0, 0, 0, 0]);

/// Fast path for a request line `buf[start..end]` that holds no control
/// character (HT included): `Some` exactly when [`parse_start_line`] would
/// accept it as a request, with the same spans; `None` for anything else.
#[inline(always)]
fn fast_request_line(buf: &[u8], start: usize, end: usize) -> Option<StartSpans> {
    let sp1 = find_by(buf, start, |w| eq_mask(w, b' ')).filter(|&sp| sp < end)?;
    let method_bytes = buf.get(start..sp1)?;
    let method = match full_word(buf, start) {
        Some(word) if method_bytes.len() <= 8 => method_from_word(word, method_bytes.len()),
        _ => Method::from_bytes(method_bytes),
    };
    if method == Method::Other
        && (sp1 == start
            || !is_token(method_bytes)
            || starts_with_ignore_case(method_bytes, b"SIP/"))
    {
        return None;
    }
    // The line ends with " SIP/2.0" and that space is the second one (so
    // the URI is not empty and has no space; the line has no HT).
    let version_at = end.checked_sub(8)?;
    if find_by(buf, sp1 + 1, |w| eq_mask(w, b' ')) != Some(version_at)
        || full_word(buf, version_at).map(|w| w | VERSION_FOLD) != Some(VERSION_WORD)
    {
        return None;
    }
    // scheme ":": ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ); mostly "sip:"
    // (either case: `|` 0x20 only folds letters onto "sip", and ':' has the
    // bit already).
    let uri_at = sp1 + 1;
    let uri = buf.get(uri_at..version_at)?;
    if let Some(&[a, b, c, d]) = uri.first_chunk::<4>() {
        if u32::from_le_bytes([a, b, c, d]) | 0x0020_2020 == u32::from_le_bytes(*b"sip:") {
            return Some(StartSpans::Request {
                method,
                method_bytes: Span::new(start, sp1),
                uri: Span::new(uri_at, version_at),
            });
        }
    }
    let (&lead, tail) = uri.split_first()?;
    if !lead.is_ascii_alphabetic() {
        return None;
    }
    for &b in tail {
        if b == b':' {
            return Some(StartSpans::Request {
                method,
                method_bytes: Span::new(start, sp1),
                uri: Span::new(uri_at, version_at),
            });
        }
        if !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')) {
            return None;
        }
    }
    None
}

/// [`Method::from_bytes`] for a method of `n` (at most 8) bytes that are
/// the low bytes of `word`.
#[inline(always)]
fn method_from_word(word: u64, n: usize) -> Method {
    const fn w(name: &[u8]) -> u64 {
        let mut word = 0;
        let mut i = 0;
        while i < name.len() {
            word |= (name[i] as u64) << (8 * i);
            i += 1;
        }
        word
    }
    let word = word & (u64::MAX >> (8 * (8 - n.clamp(1, 8))));
    match (n, word) {
        (8, x) if x == w(b"REGISTER") => Method::Register,
        (6, x) if x == w(b"INVITE") => Method::Invite,
        (3, x) if x == w(b"ACK") => Method::Ack,
        (6, x) if x == w(b"CANCEL") => Method::Cancel,
        (3, x) if x == w(b"BYE") => Method::Bye,
        (7, x) if x == w(b"OPTIONS") => Method::Options,
        (6, x) if x == w(b"NOTIFY") => Method::Notify,
        (5, x) if x == w(b"REFER") => Method::Refer,
        (7, x) if x == w(b"MESSAGE") => Method::Message,
        (4, x) if x == w(b"INFO") => Method::Info,
        (5, x) if x == w(b"PRACK") => Method::Prack,
        (6, x) if x == w(b"UPDATE") => Method::Update,
        (7, x) if x == w(b"PUBLISH") => Method::Publish,
        _ => Method::Other,
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

/// [`has_ctl_multiline`], except that a control character other than CR and
/// LF right after a backslash inside a quoted string is allowed: that is an
/// RFC 3261 §25.1 quoted-pair (`"\\" (%x00-09 / %x0B-0C / %x0E-7F)`), as in
/// the valid RFC 4475 §3.1.1.2 message `intmeth`. The vectorised check runs
/// first; only a section that has a control character is walked byte by byte.
fn has_bad_ctl_multiline(s: &[u8]) -> bool {
    has_ctl_multiline(s) && has_unescaped_ctl(s)
}

/// The byte-by-byte walk of [`has_bad_ctl_multiline`]: quoted strings are
/// tracked per header (a line that does not start with SP/HT starts a new
/// header and leaves any unterminated quoted string of the previous one).
fn has_unescaped_ctl(s: &[u8]) -> bool {
    let mut quoted = false;
    let mut escaped = false;
    let mut line_start = true;
    for (i, &b) in s.iter().enumerate() {
        if line_start && !is_ws(b) {
            quoted = false;
            escaped = false;
        }
        line_start = false;
        match b {
            b'\n' => {
                line_start = true;
                escaped = false;
                continue;
            }
            // A CR is only allowed as the CR of a CR LF, or as the very
            // last byte (the first half of a cut CR LF).
            b'\r' if s.get(i + 1).is_none_or(|&n| n == b'\n') => continue,
            b'\r' => return true,
            _ => {}
        }
        if escaped {
            escaped = false;
            continue;
        }
        if is_ctl(b) {
            return true;
        }
        if quoted {
            match b {
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
        } else if b == b'"' {
            quoted = true;
        }
    }
    false
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Absolute range of `s` (which starts at `base`) without leading/trailing
/// SP/HT. Returns an empty range at the end if `s` is all white space.
fn trim_ws_range(s: &[u8], base: usize) -> (usize, usize) {
    let end = s.iter().rposition(|&b| !is_ws(b)).map_or(0, |i| i + 1);
    let start = s.iter().position(|&b| !is_ws(b)).unwrap_or(end);
    (base + start, base + end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::values::{
        cseq, header_param, header_param_fast, header_param_reference, name_addr_uri, param_mask,
        split_list, uri_user,
    };
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
    fn quoted_pair_control_chars() {
        let msg = |to: &[u8]| {
            let mut m = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nTo: ".to_vec();
            m.extend_from_slice(to);
            m.extend_from_slice(b"\r\nCall-ID: x\r\n\r\n");
            m
        };
        // RFC 4475 intmeth: NUL, BEL, DEL escaped inside a quoted display name.
        let ok = msg(b"\"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:a@b>");
        let m = Message::parse(&ok).expect("quoted-pairs are allowed");
        assert!(m.header(HeaderName::To).is_some_and(|t| t.contains(&0)));
        assert_eq!(m.header(HeaderName::CallId), Some(&b"x"[..]));
        // Also after a folded line, and an escaped backslash does not escape what follows.
        let ok = msg(b"\"a\r\n b\\\x01\" <sip:a@b>");
        assert!(Message::parse(&ok).is_ok());
        for bad in [
            &b"\"\\\\\x00\" <sip:a@b>"[..], // `\\` then a raw NUL
            b"\\\x00 <sip:a@b>",            // a backslash outside quotes escapes nothing
            b"\"a\" \x07<sip:a@b>",         // after the quoted string
            b"\"\\\r\" <sip:a@b>",          // CR cannot be escaped
        ] {
            assert_eq!(
                err(&msg(bad)),
                ParseError::ControlChar,
                "{}",
                bad.escape_ascii()
            );
        }
        // A quoted string does not run into the next header.
        let mut v = msg(b"\"open <sip:a@b>");
        let at = v.windows(7).position(|w| w == b"Call-ID").unwrap() + 8;
        v.insert(at, b'\\');
        v.insert(at + 1, 0);
        assert_eq!(err(&v), ParseError::ControlChar);
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

    // ---- fast paths against their references ---------------------------

    /// The REGISTER the gateway benchmarks with, and the same with a sipp
    /// Authorization header.
    const BENCH_REGISTER: &[u8] = b"REGISTER sip:198.18.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bK-a-call-1\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@198.18.0.1>;tag=4497SIPpTag001\r\n\
To: <sip:alice@198.18.0.1>\r\n\
Call-ID: a-call\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sip:alice@198.18.0.2:5060>\r\n\
Expires: 3600\r\n\
User-Agent: bench-phone/1.0\r\n\
Content-Length: 0\r\n\
\r\n";

    const BENCH_REGISTER_AUTH: &[u8] = b"REGISTER sip:198.18.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bK-a-call-1\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@198.18.0.1>;tag=4497SIPpTag001\r\n\
To: <sip:alice@198.18.0.1>\r\n\
Call-ID: a-call\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sip:alice@198.18.0.2:5060>\r\n\
Authorization: Digest username=\"alice\",realm=\"sipgw\",cnonce=\"6b8b4567\",nc=00000001,\
qop=auth,uri=\"sip:127.0.0.1:15060\",nonce=\"AAAAAAECAwQFBgcICQoLDA0ODxAR\",\
response=\"c274c696629d9760d4c5c294149827aa\",algorithm=MD5\r\n\
Expires: 3600\r\n\
User-Agent: bench-phone/1.0\r\n\
Content-Length: 0\r\n\
\r\n";

    /// The fast path alone: `None` where it leaves the buffer to the
    /// reference parser.
    fn fast(buf: &[u8]) -> Option<Message<'_>> {
        let mut msg = Message::empty(buf);
        msg.parse_fast().map(|()| msg)
    }

    /// Field by field: the same view of the same buffer.
    fn same(a: &Message<'_>, b: &Message<'_>) -> bool {
        a.buf.as_ptr() == b.buf.as_ptr()
            && a.buf.len() == b.buf.len()
            && a.start == b.start
            && a.table() == b.table()
            && a.header_section_len == b.header_section_len
            && a.body == b.body
            && a.content_length == b.content_length
    }

    /// Where the fast path answers, it answers exactly like the reference;
    /// and `parse` always does.
    fn check_fast_parse(buf: &[u8]) -> Result<(), TestCaseError> {
        let reference = Message::parse_reference(buf);
        if let Some(m) = fast(buf) {
            match &reference {
                Ok(r) => prop_assert!(same(&m, r), "{}", buf.escape_ascii()),
                Err(e) => prop_assert!(false, "fast path took {} ({e:?})", buf.escape_ascii()),
            }
        }
        match (Message::parse(buf), reference) {
            (Ok(m), Ok(r)) => prop_assert!(same(&m, &r)),
            (Err(e), Err(r)) => prop_assert_eq!(e, r),
            (m, r) => prop_assert!(false, "{:?} vs {:?}", m.map(|_| ()), r.map(|_| ())),
        }
        Ok(())
    }

    /// A slice as (address, length): equal only for the very same bytes.
    fn at(s: Option<&[u8]>) -> Option<(usize, usize)> {
        s.map(|s| (s.as_ptr() as usize, s.len()))
    }

    #[test]
    fn fast_path_takes_common_messages() {
        for s in [
            BENCH_REGISTER,
            BENCH_REGISTER_AUTH,
            REGISTER,
            INVITE,
            OK_200,
            COMPACT,
            BARE_LF,
        ] {
            let m = fast(s).unwrap_or_else(|| panic!("{}", s.escape_ascii()));
            assert!(same(&m, &Message::parse_reference(s).unwrap()));
        }
        // Folded lines are the reference parser's.
        assert!(fast(FOLDED).is_none());
        assert!(Message::parse(FOLDED).is_ok());
        let m = Message::parse(BENCH_REGISTER_AUTH).unwrap();
        assert_eq!(m.header_count(), 11);
        assert!(m
            .header(HeaderName::Authorization)
            .unwrap()
            .ends_with(b"algorithm=MD5"));
    }

    #[test]
    fn fast_path_edge_cases() {
        let cases: &[&[u8]] = &[
            b"OPTIONS sip:a@b SIP/2.0\r\nSubject:   \r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nSubject:\r\nTo:x\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nSubject:  two spaces \r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nX-Custom: y\r\nl:0\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nl: 3\r\nContent-Length: 3\r\n\r\nabcdef",
            b"OPTIONS sip:a@b SIP/2.0\r\nl: 3\r\nContent-Length: 4\r\n\r\nabcdef",
            b"OPTIONS sip:a@b SIP/2.0\r\nTo: a\tb\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nTo: a\rb\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nTo: a\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nTo: a",
            b"SUBSCRIBE sip:a@b SIP/2.0\r\n\r\n",
            b"SIP/X sip:a@b SIP/2.0\r\n\r\n",
            b"sip/2.0 200 OK\r\n\r\n",
            b"INVITE SIP:a@b sip/2.0\r\n\r\n",
            b"INVITE sip:a@b  SIP/2.0\r\n\r\n",
            b"INVITE x+1.-:y SIP/2.0\r\n\r\n",
            b"INVITE x_y:z SIP/2.0\r\n\r\n",
            b"\r\n\nACK sip:a@b SIP/2.0\nl: 0\n\n",
        ];
        for buf in cases {
            check_fast_parse(buf).unwrap();
        }
        // A name long enough to be stored as `LONG_NAME` and found again.
        let mut long = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
        long.extend_from_slice(&[b'x'; 300]);
        long.extend_from_slice(b"\t : v\r\n");
        long.extend_from_slice(&[b'y'; 255]);
        long.extend_from_slice(b": w\r\n\r\n");
        check_fast_parse(&long).unwrap();
        let m = Message::parse(&long).unwrap();
        let names: Vec<_> = m.headers().map(|h| h.raw_name.len()).collect();
        assert_eq!(names, [300, 255]);
        assert_eq!(m.header_by_name(&[b'Y'; 255]), Some(&b"w"[..]));
    }

    #[test]
    fn message_is_small() {
        assert_eq!(core::mem::size_of::<Entry>(), 8);
        assert!(core::mem::size_of::<Message<'_>>() <= 560);
        assert_eq!(
            core::mem::size_of::<Result<Message<'_>, ParseError>>(),
            core::mem::size_of::<Message<'_>>()
        );
    }

    #[test]
    fn ctl_mask_is_exact_per_byte() {
        for b in 0..=255u8 {
            for k in 0..8 {
                let mut bytes = *b"abcdefgh";
                bytes[k] = b;
                let m = ctl_mask(u64::from_le_bytes(bytes)) & HIGHS;
                let want = if b < 0x20 || b == 0x7f {
                    0x80 << (8 * k)
                } else {
                    0
                };
                assert_eq!(m, want, "byte {b:#x} at {k}");
            }
        }
    }

    #[test]
    fn method_words_match_method_bytes() {
        for m in [
            "REGISTER", "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "NOTIFY", "REFER", "MESSAGE",
            "INFO", "PRACK", "UPDATE", "PUBLISH", "REGISTE", "INVITEX", "A", "", "register",
            "FOO.BAR", "SUBSCRIB",
        ] {
            let mut word = [b'!'; 8];
            word[..m.len()].copy_from_slice(m.as_bytes());
            if !m.is_empty() {
                assert_eq!(
                    method_from_word(u64::from_le_bytes(word), m.len()),
                    Method::from_bytes(m.as_bytes()),
                    "{m}"
                );
            }
        }
    }

    /// A SIP-like message: start line, header lines and body from parts
    /// that are mostly valid, with the odd deviation.
    fn sip_message() -> impl Strategy<Value = Vec<u8>> {
        let start = prop_oneof![
            20 => (
                prop::sample::select(vec!["REGISTER", "INVITE", "ACK", "SUBSCRIBE", "OPTIONS", "FOO.BAR", "invite", "PUBLISH"]),
                prop::sample::select(vec![
                    "sip:a@b", "sips:alice@example.com:5061", "tel:+1", "SIP:A@B", "s+-.:x", "x_y:z",
                ]),
            )
                .prop_map(|(m, u)| format!("{m} {u} SIP/2.0")),
            4 => prop::sample::select(vec![
                "SIP/2.0 200 OK", "SIP/2.0 100", "sip/2.0 699 Very \tOdd", "SIP/2.0 180 ",
            ])
            .prop_map(String::from),
            1 => (
                prop::sample::select(vec!["REGISTER", "", "IN(VITE", "SIP/X", "SIP/2.0"]),
                prop::sample::select(vec![" ", "  ", "\t"]),
                prop::sample::select(vec!["sip:a@b", "<sip:a>", "nocolon", "", "1sip:a", "sip:a b", "099"]),
                prop::sample::select(vec![" SIP/2.0", " sip/2.0", " SIP/3.0", "", " SIP/2.0 x", " OK"]),
            )
                .prop_map(|(m, sp, u, v)| format!("{m}{sp}{u}{v}")),
        ];
        let name = prop_oneof![
            30 => (prop::sample::select(ALL_NAMES.to_vec()), prop::collection::vec(any::<bool>(), 20))
                .prop_map(|(n, up)| n
                    .as_str()
                    .chars()
                    .zip(up)
                    .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
                    .collect::<String>()),
            8 => prop::sample::select(vec!["v", "f", "T", "i", "l", "m", "k", "x", "a", "L"]).prop_map(String::from),
            8 => "[A-Za-z0-9!%*_+`'~.-]{1,20}",
            1 => prop::sample::select(vec!["", "Via ", "Bad Name", "To<x>", " folded", "\tx", "é"]).prop_map(String::from),
        ];
        let value = prop_oneof![
            20 => "[!-~]([ -~]{0,70}[!-~])?",
            8 => prop::sample::select(vec![
                "<sip:a@b>;tag=1", "\"q;x\" <sip:b>", "SIP/2.0/UDP h;branch=z9hG4bK1", "0", "17",
                "70", "1 REGISTER", "",
            ]).prop_map(String::from),
            1 => prop::sample::select(vec!["4294967296", "+5", "1 2", " ", "   ", "a  ", "x\ty"]).prop_map(String::from),
            1 => "[ -~\t\r\x00\x7f]{0,20}",
        ];
        let sep = prop_oneof![
            20 => Just(": "),
            4 => prop::sample::select(vec![":", ":  ", " : ", ":\t", "::"]),
        ];
        let eol = prop_oneof![
            40 => Just("\r\n"),
            4 => Just("\n"),
            1 => prop::sample::select(vec!["\r", "\r\n ", "\r\n\t", "\n "]),
        ];
        let header =
            (name, sep, value, eol.clone()).prop_map(|(n, s, v, e)| format!("{n}{s}{v}{e}"));
        (
            start,
            eol.clone(),
            prop_oneof![8 => prop::collection::vec(header.clone(), 0..16), 1 => prop::collection::vec(header, 50..70)],
            prop::option::of(prop::sample::select(vec!["0", "0", "3", "5", "x", "100"])),
            eol,
            prop::collection::vec(any::<u8>(), 0..16),
            prop::sample::select(vec!["", "", "", "\r\n", "\n"]),
        )
            .prop_map(|(start, eol1, headers, length, eol2, body, lead)| {
                let mut buf = lead.as_bytes().to_vec();
                buf.extend_from_slice(start.as_bytes());
                buf.extend_from_slice(eol1.as_bytes());
                for h in &headers {
                    buf.extend_from_slice(h.as_bytes());
                }
                if let Some(n) = length {
                    buf.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
                }
                buf.extend_from_slice(eol2.as_bytes());
                buf.extend_from_slice(&body);
                buf
            })
    }

    /// Header values for `header_param`: fragment soup, or name-addrs
    /// with parameters.
    fn param_value() -> impl Strategy<Value = Vec<u8>> {
        let soup = prop::collection::vec(
            prop_oneof![
                6 => prop::sample::select(vec![
                    &b"<sip:a@b>"[..], b"<", b">", b";", b",", b"\"", b"\\", b"=", b" ", b"\t",
                    b"\r\n ", b"tag", b"TAG", b"Tag", b"tag=1", b";tag=x", b"a", b"lr", b";lr",
                    b"\"x;y\"", b"branch=z9", b"<sip:x;tag=in>", b"sip:a@b", b"4497SIPpTag001",
                    b"\"Bob\" ", b";expires=60", b"=x", b"abcdefghij",
                ]).prop_map(|s| s.to_vec()),
                1 => prop::collection::vec(any::<u8>(), 0..4),
            ],
            0..16,
        )
        .prop_map(|parts| parts.concat());
        let word = || {
            prop::sample::select(vec![
                &b"tag"[..],
                b"TAG",
                b"lr",
                b"branch",
                b"expires",
                b"x",
                b"abcdefgh",
                b"abcdefghi",
                b"",
            ])
        };
        let pvalue = prop::sample::select(vec![
            &b""[..],
            b"=1",
            b"=4497SIPpTag001",
            b"=\"q;x\"",
            b"= a ",
            b"=<u>",
            b"=a,b",
            b"=z9hG4bK-a",
        ]);
        let param = (
            prop::sample::select(vec![&b";"[..], b";", b" ;", b"; "]),
            word(),
            pvalue,
        )
            .prop_map(|(s, n, v)| [s, n, v].concat());
        let structured = (
            prop::sample::select(vec![&b""[..], b"\"Bob\" ", b"Bob ", b"\"a\\\"b;c\" "]),
            prop::sample::select(vec![
                &b"<sip:alice@198.18.0.1>"[..],
                b"<sip:a@b;tag=in>",
                b"sip:a@b",
                b"<sip:a@b",
                b"SIP/2.0/UDP 198.18.0.2:5060",
                b"*",
            ]),
            prop::collection::vec(param, 0..4),
            prop::sample::select(vec![&b""[..], b", <sip:c@d>;tag=2", b",", b" "]),
        )
            .prop_map(|(d, u, ps, t)| [d, u, &ps.concat(), t].concat());
        prop_oneof![soup, structured]
    }

    fn param_name() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => prop::sample::select(vec![&b"tag"[..], b"lr", b"branch", b"expires", b"abcdefghi"])
                .prop_map(|s| s.to_vec()),
            4 => prop::sample::select(vec![
                &b"tag"[..], b"TAG", b"branch", b"lr", b"", b"x", b"+sip.instance", b"a=b",
                b"ta g", b"tag;", b"expires", b"ABCDEFGHI", b"t", b"abcdefgh", b"tag ", b" tag",
            ]).prop_map(|s| s.to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..10),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn fast_parse_matches_reference(buf in sip_message()) {
            check_fast_parse(&buf)?;
        }

        #[test]
        fn fast_parse_matches_reference_on_mutations(
            idx in 0..SAMPLES.len() + 2,
            muts in prop::collection::vec(mutation(), 0..4),
        ) {
            let mut buf = match idx.checked_sub(SAMPLES.len()) {
                None => SAMPLES[idx].to_vec(),
                Some(0) => BENCH_REGISTER.to_vec(),
                Some(_) => BENCH_REGISTER_AUTH.to_vec(),
            };
            for m in &muts {
                apply(&mut buf, m);
            }
            check_fast_parse(&buf)?;
        }

        #[test]
        fn fast_parse_matches_reference_on_soup(parts in prop::collection::vec(fragment(), 0..64)) {
            check_fast_parse(&parts.concat())?;
        }

        #[test]
        fn fast_header_param_matches_reference(value in param_value(), name in param_name()) {
            if let Some(found) = header_param_fast(&value, &name) {
                prop_assert_eq!(at(found), at(header_param_reference(&value, &name)));
            }
            prop_assert_eq!(
                at(header_param(&value, &name)),
                at(header_param_reference(&value, &name))
            );
        }

        #[test]
        fn eq_mask_flags_exactly_the_matches(
            mut bytes in any::<[u8; 8]>(),
            c in any::<u8>(),
            plant in prop::collection::vec(any::<bool>(), 8),
        ) {
            for (b, p) in bytes.iter_mut().zip(plant) {
                if p {
                    *b = c;
                }
            }
            let m = eq_mask(u64::from_le_bytes(bytes), c) & HIGHS;
            for (k, &b) in bytes.iter().enumerate() {
                prop_assert_eq!(m >> (8 * k + 7) & 1 == 1, b == c);
            }
            let p = param_mask(u64::from_le_bytes(bytes)) & HIGHS;
            prop_assert_eq!(
                (p != 0).then(|| (p.trailing_zeros() / 8) as usize),
                bytes.iter().position(|b| b"\",;<".contains(b))
            );
        }

        #[test]
        fn ctl_mask_flags_exactly_the_controls(bytes in any::<[u8; 8]>()) {
            let m = ctl_mask(u64::from_le_bytes(bytes)) & HIGHS;
            for (k, &b) in bytes.iter().enumerate() {
                prop_assert_eq!(m >> (8 * k + 7) & 1 == 1, b < 0x20 || b == 0x7f);
            }
        }

        #[test]
        fn letters_word_compares_exactly(
            name in prop::collection::vec(any::<u8>(), 0..10),
            other in prop::collection::vec(any::<u8>(), 0..10),
            flips in prop::collection::vec(any::<bool>(), 10),
            copy in any::<bool>(),
        ) {
            let all_letters = !name.is_empty() && name.len() <= 8 && name.iter().all(u8::is_ascii_alphabetic);
            let got = letters_word(&name);
            prop_assert_eq!(got.is_some(), all_letters);
            if let Some((lower, mask)) = got {
                let other: Vec<u8> = if copy {
                    name.iter()
                        .zip(&flips)
                        .map(|(&b, &f)| if f { b.to_ascii_uppercase() } else { b })
                        .collect()
                } else {
                    other
                };
                let mut word = [0u8; 8];
                let n = other.len().min(8);
                word[..n].copy_from_slice(&other[..n]);
                let w = u64::from_le_bytes(word);
                let same = (w & mask) | ((ONES * 0x20) & mask) == lower;
                let want = other.len() >= name.len() && other[..name.len()].eq_ignore_ascii_case(&name);
                prop_assert_eq!(same, want);
            }
        }

        #[test]
        fn window_names_match_reference(
            idx in 0..ALL_NAMES.len(),
            flips in prop::collection::vec(any::<bool>(), 24),
            junk in prop::collection::vec(any::<u8>(), 0..16),
            use_junk in any::<bool>(),
            tail in any::<[u8; 64]>(),
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
            let mut win = tail;
            win[..name.len()].copy_from_slice(&name);
            let head = window_word(&win, 0);
            if name.len() <= 15 {
                prop_assert_eq!(resolve_window_name(&win, name.len(), head), reference_name(&name));
            }
            prop_assert_eq!(resolve_name_head(&win, name.len(), head), reference_name(&name));
            prop_assert_eq!(resolve_name(&name, name.len()), reference_name(&name));
        }
    }
}
