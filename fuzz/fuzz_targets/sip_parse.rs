//! cargo-fuzz target `sip_parse`: the body is `sipgw_fuzz::sip_parse` (fuzz/bodies), which the stable
//! test fuzz/bodies/tests/corpus.rs also runs over fuzz/corpus/sip_parse/.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sipgw_fuzz::sip_parse(data));
