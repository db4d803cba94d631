//! What a restore reads from a target (object storage is the network):
//! object names, sealed objects and segments. Any bytes are taken or
//! refused with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |n| usize::from(*n)).min(data.len());
    let (name, contents) = data.split_at(split);
    let name = String::from_utf8_lossy(name);
    mantle_backup::fuzzing::parse_object(&name, contents);
});
