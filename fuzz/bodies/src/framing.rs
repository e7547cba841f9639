//! Target `stream_framing`: the TCP/TLS framer over arbitrary bytes cut at arbitrary places.

use sipgw::framing::{Frame, Framer, Limits};

/// Frames of `data` fed in the pieces `cuts` gives, as owned values, and the result.
fn frames(data: &[u8], cuts: &[usize]) -> (Vec<Option<Vec<u8>>>, bool) {
    let now = quanta::Instant::now();
    let limits = Limits {
        max_message: 4096,
        max_header: 1024,
        ..Limits::default()
    };
    let mut framer = Framer::new(limits);
    let mut out = Vec::new();
    let mut at = 0;
    let mut ok = true;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        let end = cut.clamp(at, data.len());
        let r = framer.feed(now, &data[at..end], |f| {
            out.push(match f {
                Frame::Ping => None,
                Frame::Message(m) => Some(m.to_vec()),
            })
        });
        at = end;
        if r.is_err() {
            ok = false;
            break;
        }
    }
    for m in out.iter().flatten() {
        assert!(m.len() <= limits.max_message, "a frame over the limit");
        // Every framed message goes to the core next: its parser must take it.
        let _ = sipgw::sip::Message::parse(m);
    }
    (out, ok)
}

/// The first byte chooses how many cuts; the next bytes where. The frames must not depend on
/// the cuts (a stream may arrive in any segments).
pub fn stream_framing(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (cut_bytes, stream) = rest.split_at(n);
    let mut cuts: Vec<usize> = cut_bytes
        .iter()
        .map(|&b| usize::from(b) * stream.len() / 256)
        .collect();
    cuts.sort_unstable();
    let whole = frames(stream, &[]);
    let pieces = frames(stream, &cuts);
    assert_eq!(whole.1, pieces.1, "the cuts changed the verdict");
    if whole.1 {
        assert_eq!(whole.0, pieces.0, "the cuts changed the frames");
    } else {
        // Frames before the bad message are delivered either way.
        let k = whole.0.len().min(pieces.0.len());
        assert_eq!(whole.0[..k], pieces.0[..k]);
    }
}
