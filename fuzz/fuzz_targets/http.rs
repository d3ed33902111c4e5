//! The HTTP server's request handling on arbitrary bytes (checks in src/fuzzing.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cro::fuzzing::http_request(data));
