//! cargo-fuzz target `proxy`: the body is `sipgw_fuzz::proxy` (fuzz/bodies), which the stable
//! test fuzz/bodies/tests/corpus.rs also runs over fuzz/corpus/proxy/.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sipgw_fuzz::proxy(data));
