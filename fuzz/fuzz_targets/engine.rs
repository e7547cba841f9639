//! cargo-fuzz target `engine`: the body is `sipgw_fuzz::engine` (fuzz/bodies), which the stable
//! test fuzz/bodies/tests/corpus.rs also runs over fuzz/corpus/engine/.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sipgw_fuzz::engine(data));
