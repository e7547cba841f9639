//! Message framing for SIP over stream transports (TCP, TLS): RFC 3261 §18.3 and the CRLF
//! keep-alive of RFC 5626 §3.5.1.
//!
//! Layer: wire parsing, sans-IO: no socket, no clock (time is the `now` argument), no panic
//! on any input. The driver reads a connection into one big per-worker buffer and feeds
//! those bytes to the connection's [`Framer`]. Complete messages come out as slices of the
//! fed bytes (no copy); only an incomplete trailing message is copied into the framer's own
//! buffer, which holds no heap memory while the connection is idle (it is released as soon as
//! it is drained), so an idle connection costs `size_of::<Framer>()` bytes here.
//!
//! # Rules
//!
//! * Between messages, CR and LF bytes are skipped, except that `CRLF CRLF` is a keep-alive
//!   [`Frame::Ping`] (answered with [`PONG`]); a lone `CRLF` followed by anything else is the
//!   other side's pong and is ignored. A `CRLF` at the end of what arrived waits for the next
//!   bytes (it may be the first half of a ping).
//! * The header section ends at the first empty line (`CRLF CRLF`, or with bare LFs).
//! * `Content-Length` (compact `l`) is mandatory (RFC 3261 §18.3): missing is
//!   [`FrameError::MissingContentLength`]; not plain decimal, several different values, or
//!   a folded value is [`FrameError::BadContentLength`]. The message is the header section
//!   and exactly that many body bytes.
//! * More than `max_header` bytes without the end of the header section is
//!   [`FrameError::HeaderTooLarge`]; a header section plus Content-Length over
//!   `max_message` is [`FrameError::MessageTooLarge`] as soon as the header is complete. An
//!   error means the stream cannot be resynchronised: the driver closes it.
//! * A message split across any number of feeds gives the same frames as one feed. The scan
//!   for the end of the header resumes where it stopped (no quadratic rescans).
//! * [`Framer::deadline`]: a message in progress must be complete `message_deadline` after
//!   its first byte arrived (the slowloris defence; the driver compares and closes).

#![forbid(unsafe_code)]

use std::time::Duration;

use memchr::memchr_iter;
use quanta::Instant;

/// The answer to a [`Frame::Ping`].
pub const PONG: &[u8] = b"\r\n";

/// Limits of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message, header section and body (default 65535).
    pub max_message: usize,
    /// Largest header section, start line included (default 16384).
    pub max_header: usize,
    /// A message must be complete this long after its first byte (default 10 s).
    pub message_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message: 65535,
            max_header: 16384,
            message_deadline: Duration::from_secs(10),
        }
    }
}

/// What came out of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// One complete message: start line, headers, and exactly Content-Length body bytes.
    Message(&'a [u8]),
    /// A `CRLF CRLF` keep-alive ping: answer with [`PONG`].
    Ping,
}

/// Why a stream cannot be framed (the driver closes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header section is longer than the limit.
    #[error("header section longer than {limit} bytes")]
    HeaderTooLarge {
        /// `max_header`.
        limit: usize,
    },
    /// The header section plus Content-Length is longer than the limit.
    #[error("message of {len} bytes, more than {limit}")]
    MessageTooLarge {
        /// Header section plus Content-Length.
        len: usize,
        /// `max_message`.
        limit: usize,
    },
    /// No Content-Length header (mandatory on streams).
    #[error("no Content-Length (mandatory over a stream)")]
    MissingContentLength,
    /// A Content-Length that is not plain decimal, is folded, or disagrees with another.
    #[error("invalid Content-Length")]
    BadContentLength,
}

/// Where the scan of the message in progress stands.
#[derive(Debug, Clone, Copy, Default)]
struct Scan {
    /// Bytes already searched for the end of the header section.
    searched: usize,
    /// The whole message's length, once the header section is complete.
    total: Option<usize>,
}

/// The framer of one stream.
#[derive(Debug)]
pub struct Framer {
    limits: Limits,
    /// Bytes of an incomplete message (empty, no capacity, while idle).
    buf: Vec<u8>,
    scan: Scan,
    /// When the message in progress began.
    started: Option<Instant>,
}

enum Step<'a> {
    Frame(Frame<'a>, usize),
    /// Skip this many bytes (CR/LF between messages).
    Skip(usize),
    More,
}

impl Framer {
    /// A framer (allocates nothing).
    pub fn new(limits: Limits) -> Framer {
        Framer {
            limits,
            buf: Vec::new(),
            scan: Scan::default(),
            started: None,
        }
    }

    /// Feed bytes that arrived at `now`; `f` gets every complete frame, in order. An `Err`
    /// means the stream must be closed (frames before the bad message were delivered).
    pub fn feed(
        &mut self,
        now: Instant,
        data: &[u8],
        mut f: impl FnMut(Frame<'_>),
    ) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            // Nothing buffered: frame straight from `data`, keep only an incomplete tail.
            let (off, r) = frames(&self.limits, &mut self.scan, data, &mut f);
            let rest = data.get(off..).unwrap_or(&[]);
            if r.is_ok() && !rest.is_empty() {
                self.buf.extend_from_slice(rest);
            }
            self.note_start(now);
            return r;
        }
        self.buf.extend_from_slice(data);
        let (off, r) = frames(&self.limits, &mut self.scan, &self.buf, &mut f);
        if off >= self.buf.len() || r.is_err() {
            // Drained (or dead): give the memory back.
            self.buf = Vec::new();
            self.started = None;
        } else if off > 0 {
            self.buf.drain(..off);
            self.started = None;
        }
        self.note_start(now);
        r
    }

    /// A message is in progress from the first buffered byte that is not CR/LF.
    fn note_start(&mut self, now: Instant) {
        let in_progress = self.buf.iter().any(|&b| b != b'\r' && b != b'\n');
        match (in_progress, self.started) {
            (true, None) => self.started = Some(now),
            (false, _) => self.started = None,
            _ => {}
        }
    }

    /// When the message in progress must be complete; `None` while idle.
    pub fn deadline(&self) -> Option<Instant> {
        self.started.map(|s| s + self.limits.message_deadline)
    }

    /// Whether the message in progress missed its deadline at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }

    /// Bytes buffered (an incomplete message).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Heap bytes held (0 while idle).
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity()
    }
}

/// Every complete frame at the start of `bytes`, in order, to `f`: how many bytes they (and
/// skipped keep-alive CR/LF) took, and whether the stream may go on.
fn frames<'a>(
    limits: &Limits,
    scan: &mut Scan,
    bytes: &'a [u8],
    f: &mut impl FnMut(Frame<'a>),
) -> (usize, Result<(), FrameError>) {
    let mut off = 0;
    loop {
        match step(limits, scan, bytes.get(off..).unwrap_or(&[])) {
            Ok(Step::Frame(frame, n)) => {
                f(frame);
                off += n;
            }
            Ok(Step::Skip(n)) => off += n,
            Ok(Step::More) => return (off, Ok(())),
            Err(e) => return (off, Err(e)),
        }
    }
}

/// One step over `b`, which starts where the previous frame ended.
fn step<'a>(limits: &Limits, scan: &mut Scan, b: &'a [u8]) -> Result<Step<'a>, FrameError> {
    match b.first() {
        None => return Ok(Step::More),
        Some(b'\r') => {
            return Ok(match (b.get(1), b.get(2), b.get(3)) {
                (Some(b'\n'), Some(b'\r'), Some(b'\n')) => Step::Frame(Frame::Ping, 4),
                // A pong, unless more CR/LF may follow.
                (Some(b'\n'), Some(c), _) if *c != b'\r' => Step::Skip(2),
                (Some(b'\n'), Some(b'\r'), None) | (Some(b'\n'), None, _) | (None, ..) => {
                    Step::More
                }
                _ => Step::Skip(1),
            });
        }
        Some(b'\n') => return Ok(Step::Skip(1)),
        Some(_) => {}
    }
    let total = match scan.total {
        Some(t) => t,
        None => {
            let Some(header_len) = header_end(b, scan.searched) else {
                if b.len() > limits.max_header {
                    return Err(FrameError::HeaderTooLarge {
                        limit: limits.max_header,
                    });
                }
                // The last 3 bytes may begin the empty line.
                scan.searched = b.len().saturating_sub(3);
                return Ok(Step::More);
            };
            if header_len > limits.max_header {
                return Err(FrameError::HeaderTooLarge {
                    limit: limits.max_header,
                });
            }
            let body = content_length(b.get(..header_len).unwrap_or_default())?;
            let total = header_len.saturating_add(body);
            if total > limits.max_message {
                return Err(FrameError::MessageTooLarge {
                    len: total,
                    limit: limits.max_message,
                });
            }
            scan.total = Some(total);
            total
        }
    };
    match b.get(..total) {
        Some(msg) => {
            *scan = Scan::default();
            Ok(Step::Frame(Frame::Message(msg), total))
        }
        None => Ok(Step::More),
    }
}

/// The length of the header section (through its empty line), searching from `from`.
fn header_end(b: &[u8], from: usize) -> Option<usize> {
    let rest = b.get(from..)?;
    for i in memchr_iter(b'\n', rest).map(|i| i + from) {
        match (b.get(i + 1), b.get(i + 2)) {
            (Some(b'\n'), _) => return Some(i + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(i + 3),
            _ => {}
        }
    }
    None
}

/// The Content-Length of a header section (the start line is skipped).
fn content_length(header: &[u8]) -> Result<usize, FrameError> {
    let mut found: Option<usize> = None;
    let mut lines = header.split(|&b| b == b'\n').skip(1).peekable();
    while let Some(line) = lines.next() {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            continue;
        }
        let name = line.get(..colon).unwrap_or_default().trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        if lines
            .peek()
            .is_some_and(|next| next.first().is_some_and(|&b| b == b' ' || b == b'\t'))
        {
            return Err(FrameError::BadContentLength);
        }
        let value = line.get(colon + 1..).unwrap_or_default().trim_ascii();
        if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
            return Err(FrameError::BadContentLength);
        }
        let n = value
            .iter()
            .fold(0usize, |n, &d| n * 10 + usize::from(d - b'0'));
        if found.is_some_and(|f| f != n) {
            return Err(FrameError::BadContentLength);
        }
        found = Some(n);
    }
    found.ok_or(FrameError::MissingContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg(body: &str) -> Vec<u8> {
        format!(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Out {
        Msg(Vec<u8>),
        Ping,
    }

    fn run(
        framer: &mut Framer,
        now: Instant,
        feeds: &[&[u8]],
    ) -> (Vec<Out>, Result<(), FrameError>) {
        let mut out = Vec::new();
        for f in feeds {
            let r = framer.feed(now, f, |fr| {
                out.push(match fr {
                    Frame::Message(m) => Out::Msg(m.to_vec()),
                    Frame::Ping => Out::Ping,
                })
            });
            if r.is_err() {
                return (out, r);
            }
        }
        (out, Ok(()))
    }

    fn now() -> Instant {
        Instant::now()
    }

    #[test]
    fn two_requests_in_one_segment_and_one_split_byte_by_byte() {
        let a = msg("");
        let b = msg("v=0\r\n\r\n");
        let mut both = a.clone();
        both.extend_from_slice(&b);
        let mut f = Framer::new(Limits::default());
        let (out, r) = run(&mut f, now(), &[&both]);
        assert!(r.is_ok());
        assert_eq!(out, [Out::Msg(a.clone()), Out::Msg(b.clone())]);
        assert_eq!(f.heap_bytes(), 0);

        let bytes: Vec<&[u8]> = b.chunks(1).collect();
        let (out, r) = run(&mut f, now(), &bytes);
        assert!(r.is_ok());
        assert_eq!(out, [Out::Msg(b)]);
        assert_eq!((f.buffered(), f.heap_bytes()), (0, 0));
        assert_eq!(f.deadline(), None);
    }

    #[test]
    fn pings_pongs_and_a_ping_split_in_two() {
        let mut f = Framer::new(Limits::default());
        let (out, _) = run(&mut f, now(), &[b"\r\n\r\n"]);
        assert_eq!(out, [Out::Ping]);
        let (out, _) = run(&mut f, now(), &[b"\r\n", b"\r\n"]);
        assert_eq!(out, [Out::Ping]);
        // A pong and then a message: no ping.
        let m = msg("");
        let mut pong_then = b"\r\n".to_vec();
        pong_then.extend_from_slice(&m);
        let (out, _) = run(&mut f, now(), &[&pong_then]);
        assert_eq!(out, [Out::Msg(m.clone())]);
        let (out, _) = run(&mut f, now(), &[b"\r\n", &m]);
        assert_eq!(out, [Out::Msg(m)]);
        // A waiting CRLF is no message in progress: no deadline.
        let (_, _) = run(&mut f, now(), &[b"\r\n"]);
        assert_eq!(f.deadline(), None);
    }

    #[test]
    fn content_length_is_mandatory_and_checked() {
        let cases: [(&[u8], FrameError); 4] = [
            (
                b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n",
                FrameError::MissingContentLength,
            ),
            (
                b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 1x\r\n\r\n",
                FrameError::BadContentLength,
            ),
            (
                b"OPTIONS sip:a SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab",
                FrameError::BadContentLength,
            ),
            (
                b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 1\r\n 2\r\n\r\nab",
                FrameError::BadContentLength,
            ),
        ];
        for (bytes, want) in cases {
            let mut f = Framer::new(Limits::default());
            assert_eq!(run(&mut f, now(), &[bytes]).1, Err(want), "{bytes:?}");
        }
        // Compact form, spaces around the colon, bare LFs.
        let m = b"OPTIONS sip:a SIP/2.0\nl : 2\n\nab";
        let mut f = Framer::new(Limits::default());
        let (out, r) = run(&mut f, now(), &[m]);
        assert!(r.is_ok());
        assert_eq!(out, [Out::Msg(m.to_vec())]);
    }

    #[test]
    fn limits_stop_slow_and_large_messages() {
        let limits = Limits {
            max_header: 100,
            max_message: 200,
            ..Limits::default()
        };
        let mut f = Framer::new(limits);
        let slow = [b'A'; 101];
        let feeds: Vec<&[u8]> = slow.chunks(1).collect();
        assert_eq!(
            run(&mut f, now(), &feeds).1,
            Err(FrameError::HeaderTooLarge { limit: 100 })
        );
        assert_eq!(f.heap_bytes(), 0);
        let mut f = Framer::new(limits);
        let big = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 500\r\n\r\n";
        assert!(matches!(
            run(&mut f, now(), &[big]).1,
            Err(FrameError::MessageTooLarge { limit: 200, .. })
        ));
    }

    #[test]
    fn the_deadline_runs_from_the_first_byte_of_a_message() {
        let (clock, mock) = quanta::Clock::mock();
        mock.increment(Duration::from_secs(100));
        let t0 = clock.now();
        let mut f = Framer::new(Limits::default());
        let m = msg("body");
        let (out, _) = run(&mut f, t0, &[&m[..10]]);
        assert!(out.is_empty());
        assert_eq!(f.deadline(), Some(t0 + Duration::from_secs(10)));
        mock.increment(Duration::from_secs(5));
        let (out, _) = run(&mut f, clock.now(), &[&m[10..20]]);
        assert!(out.is_empty());
        assert_eq!(
            f.deadline(),
            Some(t0 + Duration::from_secs(10)),
            "not extended"
        );
        assert!(!f.expired(clock.now()));
        mock.increment(Duration::from_secs(5));
        assert!(f.expired(clock.now()));
        let (out, _) = run(&mut f, clock.now(), &[&m[20..]]);
        assert_eq!(out, [Out::Msg(m)]);
        assert_eq!(f.deadline(), None);
    }

    fn message_strategy() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::collection::vec("[A-Za-z-]{1,12}: [ -~]{0,40}", 0..6),
            prop::collection::vec(any::<u8>(), 0..300),
            any::<bool>(),
        )
            .prop_map(|(headers, body, compact)| {
                let mut m = b"INVITE sip:x@y SIP/2.0\r\n".to_vec();
                for h in headers {
                    if !h.to_ascii_lowercase().starts_with("content-length")
                        && !h.to_ascii_lowercase().starts_with("l:")
                    {
                        m.extend_from_slice(h.as_bytes());
                        m.extend_from_slice(b"\r\n");
                    }
                }
                let name = if compact { "l" } else { "Content-Length" };
                m.extend_from_slice(format!("{name}: {}\r\n\r\n", body.len()).as_bytes());
                m.extend_from_slice(&body);
                m
            })
    }

    proptest! {
        #[test]
        fn cut_anywhere_the_frames_are_the_same(
            msgs in prop::collection::vec((message_strategy(), any::<bool>()), 1..5),
            cuts in prop::collection::vec(1usize..64, 0..40),
        ) {
            let mut stream = Vec::new();
            let mut want = Vec::new();
            for (m, ping) in &msgs {
                if *ping {
                    stream.extend_from_slice(b"\r\n\r\n");
                    want.push(Out::Ping);
                }
                stream.extend_from_slice(m);
                want.push(Out::Msg(m.clone()));
            }
            let mut feeds: Vec<&[u8]> = Vec::new();
            let mut rest = &stream[..];
            for c in cuts {
                if rest.is_empty() { break; }
                let (a, b) = rest.split_at(c.min(rest.len()));
                feeds.push(a);
                rest = b;
            }
            if !rest.is_empty() { feeds.push(rest); }
            let mut f = Framer::new(Limits::default());
            let (out, r) = run(&mut f, now(), &feeds);
            prop_assert!(r.is_ok());
            prop_assert_eq!(out, want);
            prop_assert_eq!(f.heap_bytes(), 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_cuts_do_not_matter(
            bytes in prop::collection::vec(any::<u8>(), 0..600),
            cut in 0usize..600,
        ) {
            let limits = Limits { max_header: 128, max_message: 256, ..Limits::default() };
            let mut one = Framer::new(limits);
            let whole = run(&mut one, now(), &[&bytes]);
            let (a, b) = bytes.split_at(cut.min(bytes.len()));
            let mut two = Framer::new(limits);
            let split = run(&mut two, now(), &[a, b]);
            // A stream still open holds at most one incomplete message within the limits.
            if split.1.is_ok() {
                prop_assert!(two.buffered() <= limits.max_message.max(limits.max_header));
            }
            // Errors may come earlier in a split feed (a limit crossed before the data that
            // would have completed the header arrived), never different frames before them.
            if whole.1.is_ok() && split.1.is_ok() {
                prop_assert_eq!(whole.0, split.0);
            } else {
                prop_assert!(whole.0.len() >= split.0.len() || split.1.is_ok());
            }
        }
    }
}
