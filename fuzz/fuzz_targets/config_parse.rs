//! cargo-fuzz target `config_parse`: the body is `sipgw_fuzz::config_parse` (fuzz/bodies), which the stable
//! test fuzz/bodies/tests/corpus.rs also runs over fuzz/corpus/config_parse/.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sipgw_fuzz::config_parse(data));
