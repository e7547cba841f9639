//! The bodies of sipgw's fuzz targets (see `docs/fuzzing.md`).
//!
//! Each `pub fn <target>(data: &[u8])` takes any input and checks its properties with
//! `assert!`: a panic is a finding. The cargo-fuzz crate in `fuzz/` (nightly, libFuzzer) calls
//! them from one `fuzz_targets/<target>.rs` each; `tests/corpus.rs` runs every body over every
//! file of `fuzz/corpus/<target>/` as an ordinary stable test, so a machine without a nightly
//! toolchain still checks the corpus.
//!
//! | target              | what it feeds                                                     |
//! |---------------------|-------------------------------------------------------------------|
//! | [`sip_parse`]       | `Message::parse` and every accessor and header helper             |
//! | [`credentials_parse`] | digest `Credentials::parse`, unescaping, verification          |
//! | [`engine`]          | sequences of datagrams over several peers on a mock clock         |
//! | [`proxy`]           | `Proxy` rewriting in both directions, and the responses back      |
//! | [`xdp_frame`]       | AF_XDP frame parsing and the in-place reply rewrite               |
//! | [`config_parse`]    | `Config::parse` and `CredentialStore::parse`                      |
//! | [`stream_framing`]  | the TCP/TLS framer, the same stream cut at arbitrary places       |
//!
//! [`TARGETS`] lists them by name (the corpus directory names).

mod config;
mod credentials;
mod engine;
mod framing;
mod input;
mod proxy;
mod seeds;
mod sip;
mod xdp;

pub use config::config_parse;
pub use credentials::credentials_parse;
pub use engine::engine;
pub use framing::stream_framing;
pub use proxy::proxy;
pub use seeds::{engine_seed, proxy_seed, xdp_seed};
pub use sip::sip_parse;
pub use xdp::xdp_frame;

/// A fuzz target body.
pub type Body = fn(&[u8]);

/// Every target: its name (that of its `fuzz_targets/*.rs` and `fuzz/corpus/*` directory)
/// and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("sip_parse", sip_parse),
    ("credentials_parse", credentials_parse),
    ("engine", engine),
    ("proxy", proxy),
    ("xdp_frame", xdp_frame),
    ("config_parse", config_parse),
    ("stream_framing", stream_framing),
];

/// Whether `inner` lies within `outer` (same allocation, in bounds): every slice an accessor
/// hands out must borrow from its input.
pub(crate) fn within(outer: &[u8], inner: &[u8]) -> bool {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    inner.is_empty() || (i >= o && i + inner.len() <= o + outer.len())
}
