//! Property tests: round trips and a never-panics check on the decoder.

use bytes::BytesMut;
use mantle_amp::*;
use proptest::prelude::*;

fn amp_box() -> impl Strategy<Value = AmpBox> {
    proptest::collection::btree_map(
        proptest::collection::vec(any::<u8>(), 1..=255),
        proptest::collection::vec(any::<u8>(), 0..300),
        0..8,
    )
    .prop_map(|m| m.into_iter().collect())
}

fn datetime() -> impl Strategy<Value = AmpDateTime> {
    (
        1u16..=9999,
        1u8..=12,
        1u8..=28,
        0u8..24,
        0u8..60,
        0u8..60,
        0u32..1_000_000,
        -1439i16..=1439,
    )
        .prop_map(
            |(year, month, day, hour, minute, second, microsecond, offset_minutes)| AmpDateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                microsecond,
                offset_minutes,
            },
        )
}

proptest! {
    #[test]
    fn box_round_trip(boxes in proptest::collection::vec(amp_box(), 0..4), split in any::<prop::sample::Index>()) {
        let mut bytes = Vec::new();
        for b in &boxes {
            encode_into(b, &mut bytes).unwrap();
        }
        // Deliver in two arbitrary pieces.
        let at = if bytes.is_empty() { 0 } else { split.index(bytes.len() + 1) };
        let mut dec = BoxDecoder::new();
        let mut buf = BytesMut::from(&bytes[..at]);
        let mut got = Vec::new();
        while let Some(b) = dec.decode(&mut buf).unwrap() {
            got.push(b);
        }
        buf.extend_from_slice(&bytes[at..]);
        while let Some(b) = dec.decode_eof(&mut buf).unwrap() {
            got.push(b);
        }
        prop_assert_eq!(&got, &boxes);
        prop_assert_eq!(parse_boxes(&bytes).unwrap(), boxes);
    }

    #[test]
    fn decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048), max in 0usize..4096) {
        let mut dec = BoxDecoder::with_max_box_size(max);
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(_)) = dec.decode(&mut buf) {}
        let _ = dec.decode_eof(&mut buf);
        let _ = parse_boxes(&data);
        let _ = AmpList::from_amp(&data);
        let _ = ListOf::<AmpDecimal>::from_amp(&data);
        let _ = ListOf::<AmpDateTime>::from_amp(&data);
        let _ = ListOf::<f64>::from_amp(&data);
        let _ = ListOf::<i64>::from_amp(&data);
    }

    #[test]
    fn decoded_boxes_reencode_identically(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        // Whatever decodes re-encodes (canonically) and decodes back to itself.
        if let Ok(boxes) = parse_boxes(&data) {
            for b in boxes {
                let enc = encode(&b).unwrap();
                prop_assert_eq!(parse_boxes(&enc).unwrap(), vec![b]);
            }
        }
    }

    #[test]
    fn integer_round_trip(n in any::<i64>()) {
        prop_assert_eq!(i64::from_amp(&n.to_amp().unwrap()).unwrap(), n);
    }

    #[test]
    fn string_round_trip(b in proptest::collection::vec(any::<u8>(), 0..100), s in ".*") {
        prop_assert_eq!(Vec::<u8>::from_amp(&b.to_amp().unwrap()).unwrap(), b);
        prop_assert_eq!(String::from_amp(&s.to_amp().unwrap()).unwrap(), s);
    }

    #[test]
    fn float_round_trip(x in any::<f64>()) {
        let back = f64::from_amp(&x.to_amp().unwrap()).unwrap();
        prop_assert!(back.to_bits() == x.to_bits() || (x.is_nan() && back.is_nan()));
    }

    #[test]
    fn amp_float_round_trips_through_serde_and_the_wire(x in any::<f64>()) {
        // Every f64, NaN and the infinities included, survives JSON (where
        // a plain f64 would become null) and AMP.
        let f = AmpFloat(x);
        let json = serde_json::to_value(f).unwrap();
        prop_assert_eq!(json.is_string(), !x.is_finite());
        prop_assert_eq!(serde_json::from_value::<AmpFloat>(json).unwrap(), f);
        prop_assert_eq!(AmpFloat::from_amp(&f.to_amp().unwrap()).unwrap(), f);
    }

    #[test]
    fn bool_round_trip(v in any::<bool>()) {
        prop_assert_eq!(bool::from_amp(&v.to_amp().unwrap()).unwrap(), v);
    }

    #[test]
    fn datetime_round_trip(dt in datetime()) {
        let enc = dt.to_amp().unwrap();
        prop_assert_eq!(enc.len(), 32);
        prop_assert_eq!(AmpDateTime::from_amp(&enc).unwrap(), dt);
    }

    #[test]
    fn decimal_round_trip(s in "[+-]?([0-9]{1,20}(\\.[0-9]{0,10})?|\\.[0-9]{1,10})([eE][+-]?[0-9]{1,4})?|[+-]?(Infinity|inf|s?NaN[0-9]{0,3})") {
        let d = AmpDecimal::from_amp(s.as_bytes()).unwrap();
        prop_assert_eq!(d.to_amp().unwrap(), s.as_bytes());
    }

    #[test]
    fn list_of_round_trip(v in proptest::collection::vec(any::<i64>(), 0..50), w in proptest::collection::vec(".{0,20}", 0..20)) {
        let l = ListOf(v);
        prop_assert_eq!(ListOf::<i64>::from_amp(&l.to_amp().unwrap()).unwrap(), l);
        let l = ListOf(w);
        prop_assert_eq!(ListOf::<String>::from_amp(&l.to_amp().unwrap()).unwrap(), l);
    }

    #[test]
    fn amp_list_round_trip(boxes in proptest::collection::vec(amp_box(), 0..4)) {
        let l = AmpList(boxes);
        prop_assert_eq!(AmpList::from_amp(&l.to_amp().unwrap()).unwrap(), l);
    }

    #[test]
    fn message_round_trip(cmd in proptest::collection::vec(any::<u8>(), 0..20), tag in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20))) {
        let req = frame::request(&cmd, tag.as_deref(), AmpBox::new().with("x", "1"));
        let m = Message::classify(req.clone()).unwrap();
        prop_assert_eq!(m.into_box(), req);
    }
}

#[test]
fn amp_float_refuses_strings_that_are_not_non_finite_spellings() {
    for bad in [r#""abc""#, r#""1.5""#, r#""""#, "null", "true"] {
        assert!(
            serde_json::from_str::<AmpFloat>(bad).is_err(),
            "{bad} must not be a float"
        );
    }
    for (text, want) in [
        (r#""inf""#, f64::INFINITY),
        (r#""-Infinity""#, f64::NEG_INFINITY),
    ] {
        assert_eq!(
            serde_json::from_str::<AmpFloat>(text).unwrap(),
            AmpFloat(want)
        );
    }
}
