//! `sipgw-loader`: not written yet (see `README.md` in this crate for what it will hold).
//!
//! This crate deliberately exports nothing until the loader exists.
