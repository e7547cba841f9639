//! cargo-fuzz target `xdp_frame`: the body is `sipgw_fuzz::xdp_frame` (fuzz/bodies), which the stable
//! test fuzz/bodies/tests/corpus.rs also runs over fuzz/corpus/xdp_frame/.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sipgw_fuzz::xdp_frame(data));
