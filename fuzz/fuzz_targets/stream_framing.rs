//! cargo-fuzz target `stream_framing`: the body is `sipgw_fuzz::stream_framing` (fuzz/bodies),
//! which the stable test fuzz/bodies/tests/corpus.rs also runs over fuzz/corpus/stream_framing/.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sipgw_fuzz::stream_framing(data));
