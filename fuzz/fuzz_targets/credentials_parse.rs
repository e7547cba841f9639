//! cargo-fuzz target `credentials_parse`: the body is `sipgw_fuzz::credentials_parse` (fuzz/bodies), which the stable
//! test fuzz/bodies/tests/corpus.rs also runs over fuzz/corpus/credentials_parse/.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sipgw_fuzz::credentials_parse(data));
