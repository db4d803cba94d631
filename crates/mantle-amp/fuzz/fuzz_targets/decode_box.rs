#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mantle_amp::{AmpArgument, AmpList, BoxDecoder, encode, parse_boxes};

fuzz_target!(|data: &[u8]| {
    // Streaming decode must never panic, and every box it yields must
    // re-encode and decode back to itself.
    let mut dec = BoxDecoder::with_max_box_size(1 << 16);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(b)) = dec.decode(&mut buf) {
        let enc = encode(&b).expect("decoded boxes are always encodable");
        assert_eq!(parse_boxes(&enc).expect("re-encoded box parses"), vec![b]);
    }
    let _ = dec.decode_eof(&mut buf);
    let _ = AmpList::from_amp(data);
});
