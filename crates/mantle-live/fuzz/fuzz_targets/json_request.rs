//! The WebSocket transport's message decoder: any text parses into a
//! request or a BAD_REQUEST answer, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(req) = mantle_live::json::JsonRequest::parse(text) {
            // What parsed serializes again.
            serde_json::to_string(&req).unwrap();
        }
    }
});
