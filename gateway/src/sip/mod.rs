//! SIP (RFC 3261) on the wire: zero-copy, sans-IO, no allocation, no `unsafe`.
//!
//! Layer: the bottom of the protocol core; it imports nothing else of the crate. Every other
//! module reads and writes SIP through it:
//!
//! | module | what |
//! |---|---|
//! | [`message`] | the checked view of one message ([`Message::parse`]): start line, header table, body |
//! | [`values`] | header values: lists, name-addr, URIs, parameters, Via, CSeq, IP literals, ports |
//! | [`write`](mod@write) | the one writer of every reply and every forwarded message |
//! | [`chars`] | the token character tables (RFC 3261 §25.1, RFC 7230 `tchar`) |
//! | [`num`] | decimal, hex and percent-escapes |
//! | [`tag`] | our To-tag for the replies sipgw answers itself |
//!
//! (`swar`, private: the word-at-a-time scanning of the parser's and [`header_param`]'s fast
//! paths.) The children import one another, never this module.
#![forbid(unsafe_code)]

pub mod chars;
pub mod message;
pub mod num;
mod swar;
pub mod tag;
pub mod values;
pub mod write;

pub(crate) use chars::is_token;
pub use message::*;
pub(crate) use values::trim_lws;
pub use values::{
    cseq, has_empty_list_element, header_param, name_addr_uri, split_list, uri_user, ListItems,
};
