#![no_main]
//! Arbitrary bytes as a flags.toml: compile, merge, evaluate, explain.
libfuzzer_sys::fuzz_target!(|data: &[u8]| flags_fuzz::compile_config(data));
