//! The history day-file reader on arbitrary bytes (checks in src/fuzzing.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cro::fuzzing::history_text(data));
