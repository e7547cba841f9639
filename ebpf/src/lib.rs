//! sipgw's XDP program: not written yet (see `README.md` in this crate for what it will hold).
//!
//! This crate deliberately exports nothing until the program exists.
