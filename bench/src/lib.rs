//! `sipgw-bench`: not written yet (see `README.md` in this crate for what it will hold).
//!
//! This crate deliberately exports nothing until the load generator exists. The engine's
//! micro-benchmarks live in `gateway/benches/`.
