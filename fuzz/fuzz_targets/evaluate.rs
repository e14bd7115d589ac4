#![no_main]
//! Arbitrary bytes decoded as a context and an instant, evaluated against every flag.
libfuzzer_sys::fuzz_target!(|data: &[u8]| flags_fuzz::evaluate(data));
