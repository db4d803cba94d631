//! What the sharing layer parses from the network (Shoji requests, live
//! model names): roles, share ids, access names and catalog filters. Any
//! text is accepted or refused with an error, never a panic; a role that
//! parses prints back as the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mantle_site::sharing::{Role, check_access_name, check_share_id};
use mantle_store::{Filter, Item};

#[derive(Item)]
#[item(name = "fuzz_doc", version = 1)]
struct Doc {
    title: String,
    n: i64,
    x: Option<f64>,
    done: bool,
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(role) = text.parse::<Role>() {
        assert_eq!(role.to_string(), text, "a role prints as it was written");
    }
    let _ = check_share_id(text);
    let _ = check_access_name(text);
    // A catalog filter: `NAME=JSON`.
    if let Some((name, value)) = text.split_once('=') {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(value) {
            let _ = Filter::<Doc>::attribute_eq(name, &value);
        }
    }
});
