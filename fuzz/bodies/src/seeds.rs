//! Encoding seed inputs for the targets whose input is more than the bytes they parse
//! (used by `examples/seed.rs`, which builds `fuzz/corpus/`).

/// An `engine` input: the default configuration (or `variant`), then `msg` as one raw
/// datagram from the first peer.
#[must_use]
pub fn engine_seed(variant: u8, msg: &[u8]) -> Vec<u8> {
    let len = u16::try_from(msg.len()).unwrap_or(u16::MAX);
    let mut v = vec![variant, 3, 0];
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&msg[..usize::from(len)]);
    v
}

/// A `proxy` input: `flags` (bits 0-1 the proxy variant, 2-3 the direction: 0 upstream,
/// 1 downstream, 2 response), the peer, the identity choice, then `msg` (full output
/// buffer, response status 200).
#[must_use]
pub fn proxy_seed(flags: u8, peer: u8, identity: u8, msg: &[u8]) -> Vec<u8> {
    let mut v = vec![flags, peer, identity, 0xff, 0, 100];
    v.extend_from_slice(msg);
    v
}

/// An `xdp_frame` input: the reply-length `mode`, then the frame.
#[must_use]
pub fn xdp_seed(mode: u8, frame: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(frame);
    v
}
