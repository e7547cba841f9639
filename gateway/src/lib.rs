//! sipgw: a SIP digest-authentication gateway that sits inline in front of a softswitch.
//!
//! This crate holds the sans-IO protocol core, driven by every I/O path (AF_XDP, UDP sockets,
//! in-memory replay):
//!
//! | module          | what it does                                                        |
//! |-----------------|---------------------------------------------------------------------|
//! | [`sip`]         | zero-copy checked view over a SIP datagram                          |
//! | [`validate`]    | strict checks before any decision (400/420 reasons)                 |
//! | [`digest`]      | Authorization / Proxy-Authorization parsing, MD5 digest verification |
//! | [`md5x`]        | multi-buffer MD5 (AVX-512 16 lanes, AVX2 8 lanes, scalar fallback)  |
//! | [`nonce`]       | stateless nonces (mint/verify, rotation) and the nc replay table    |
//! | [`policy`]      | VOS3000 retry/suspend rules, sessions, source lockout, bounded tables |
//! | [`guard`]       | account budget and known-good sources, shared by every worker       |
//! | [`admission`]   | known sources first when a worker is overloaded (budget for unknown ones) |
//! | [`addr`]        | canonical addresses, networks by prefix (shared address helpers)    |
//! | [`credentials`] | the credential store (password/HA1, IP and IP+port accounts)        |
//! | [`config`]      | TOML configuration with VOS3000 aliases and range checks            |
//! | [`engine`]      | `handle(now, peer, datagram)` → [`engine::Verdict`]                 |
//! | [`event`]       | suspensions, bans and rejections reported to the driver             |
//! | [`counters`]    | decision counters by reason                                         |
//! | [`table`]       | fixed-size two-choice bucketed table for the policy's state        |
//! | [`shard`]       | messages between the engines of several workers (per-core shards)   |
//! | [`proxy`]       | stateless-proxy rewriting toward and from the softswitch            |
//! | [`flow`]        | transports, connection ids and flows (where a message came from)    |
//! | [`framing`]     | SIP message framing on TCP/TLS streams (RFC 3261 §18.3, RFC 5626)   |
//! | [`gateway`]     | the one sans-IO core: engine + proxy, `(now, flow, bytes)` → actions |
//!
//! and the driver that runs them on UDP, AF_XDP, TCP and TLS, [`runtime`] (`sipgw run`).
//!
//! None of the sans-IO modules use `unsafe`; each forbids it. The workspace denies it
//! everywhere else, and exactly four modules allow it, each block with a `// SAFETY:`
//! comment: [`md5x`] (SIMD intrinsics: gathers, feature-gated calls), `runtime::udp` (`recvmmsg`/`sendmmsg`), `runtime::xdp::xsk` (the AF_XDP UMEM and
//! rings) and `runtime::xdp::maps` (the mmapped `gw_counters` array). See
//! `docs/architecture.md`.

pub mod addr;
pub mod admission;
pub mod config;
pub mod counters;
pub mod credentials;
pub mod digest;
pub mod engine;
pub mod event;
pub mod flow;
pub mod framing;
pub mod gateway;
pub mod guard;
pub mod md5x;
pub mod nonce;
pub mod policy;
pub mod proxy;
pub mod runtime;
pub mod shard;
pub mod sip;
pub mod table;
pub mod validate;

pub use config::Config;
pub use counters::Counters;
pub use credentials::CredentialStore;
pub use engine::{Datagram, Engine, Secrets, Verdict, WallClock};
pub use event::Event;
