//! The AMP argument decoder: any boxes decode by a schema covering every
//! argument type, or fail with an error; what decodes encodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mantle_live::{Arguments, Copyable, arguments, codec};

arguments! {
    struct Row { name: String, n: i64 }
    struct Everything {
        i: Option<i64>,
        s: Option<bytes::Bytes>,
        u: Option<String>,
        f: Option<f64>,
        b: Option<bool>,
        d: Option<mantle_amp::AmpDateTime>,
        m: Option<mantle_amp::AmpDecimal>,
        l: Option<Vec<i64>>,
        ls: Option<Vec<String>>,
        rows: Option<Vec<Row>>,
        j: Option<Copyable<serde_json::Value>>,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(boxes) = mantle_amp::parse_boxes(data) else {
        return;
    };
    for b in boxes {
        if let Ok(fields) = codec::from_amp(&b, Everything::schema()) {
            codec::to_amp(&fields, Everything::schema()).expect("what decodes encodes");
            let _ = serde_json::from_value::<Everything>(serde_json::Value::Object(fields));
        }
    }
});
