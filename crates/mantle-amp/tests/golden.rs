//! Exact-byte tests. Expected bytes follow the layout in Twisted's
//! `BinaryBoxProtocol` docstring and `AmpBox.serialize` (keys sorted,
//! `!H` lengths, terminating `\x00\x00`) and the `toString` methods of the
//! argument classes in `twisted/protocols/amp.py`.

use bytes::BytesMut;
use mantle_amp::*;

#[test]
fn box_bytes_sorted_keys() {
    // Twisted serializes `sorted(self.items())`, so insertion order is irrelevant.
    let b = AmpBox::new().with("b", "81").with("a", "13");
    assert_eq!(
        encode(&b).unwrap(),
        b"\x00\x01a\x00\x0213\x00\x01b\x00\x0281\x00\x00"
    );
    assert_eq!(encode(&AmpBox::new()).unwrap(), b"\x00\x00");
    let empty_value = AmpBox::new().with("k", "");
    assert_eq!(encode(&empty_value).unwrap(), b"\x00\x01k\x00\x00\x00\x00");
}

#[test]
fn twisted_sum_example() {
    // The `sum` request from Twisted's AMP documentation.
    let req = frame::request(
        b"sum",
        Some(b"ef639e5c892ccb54"),
        AmpBox::new()
            .with("a", 13i64.to_amp().unwrap())
            .with("b", 81i64.to_amp().unwrap()),
    );
    let mut want = Vec::new();
    for (k, v) in [
        (&b"_ask"[..], &b"ef639e5c892ccb54"[..]),
        (b"_command", b"sum"),
        (b"a", b"13"),
        (b"b", b"81"),
    ] {
        want.extend_from_slice(&(k.len() as u16).to_be_bytes());
        want.extend_from_slice(k);
        want.extend_from_slice(&(v.len() as u16).to_be_bytes());
        want.extend_from_slice(v);
    }
    want.extend_from_slice(b"\x00\x00");
    assert_eq!(encode(&req).unwrap(), want);
    assert_eq!(
        &want[..20],
        b"\x00\x04_ask\x00\x10ef639e5c892c",
        "length prefixes are big-endian u16"
    );
}

#[test]
fn encode_validation() {
    assert_eq!(
        encode(&AmpBox::new().with("", "x")),
        Err(EncodeError::EmptyKey)
    );
    assert_eq!(
        encode(&AmpBox::new().with(vec![b'k'; 256], "x")),
        Err(EncodeError::KeyTooLong { len: 256 })
    );
    assert!(encode(&AmpBox::new().with(vec![b'k'; 255], "x")).is_ok());
    assert!(matches!(
        encode(&AmpBox::new().with("k", vec![0u8; 65536])),
        Err(EncodeError::ValueTooLong { len: 65536, .. })
    ));
    let max = encode(&AmpBox::new().with("k", vec![7u8; 65535])).unwrap();
    assert_eq!(&max[..5], b"\x00\x01k\xff\xff");
}

#[test]
fn decoder_streams_and_errors() {
    let mut dec = BoxDecoder::new();
    let two = b"\x00\x01a\x00\x011\x00\x00\x00\x01b\x00\x00\x00\x00";
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for byte in two {
        buf.extend_from_slice(&[*byte]);
        while let Some(b) = dec.decode(&mut buf).unwrap() {
            got.push(b);
        }
    }
    assert_eq!(
        got,
        vec![AmpBox::new().with("a", "1"), AmpBox::new().with("b", "")]
    );
    assert!(buf.is_empty());
    assert!(dec.decode_eof(&mut buf).unwrap().is_none());

    // Repeated keys: last one wins, as with Twisted's dict-based box.
    let mut buf = BytesMut::from(&b"\x00\x01a\x00\x011\x00\x01a\x00\x012\x00\x00"[..]);
    assert_eq!(
        dec.decode(&mut buf).unwrap(),
        Some(AmpBox::new().with("a", "2"))
    );

    // Key length 256.
    let mut buf = BytesMut::from(&b"\x01\x00"[..]);
    assert!(matches!(
        dec.decode(&mut buf),
        Err(DecodeError::KeyTooLong {
            len: 256,
            offset: 0
        })
    ));

    // Value length runs past the end of the stream.
    let mut buf = BytesMut::from(&b"\x00\x01a\x00\x05ab"[..]);
    assert!(dec.decode(&mut buf).unwrap().is_none());
    match dec.decode_eof(&mut buf) {
        Err(DecodeError::Truncated {
            what: "value",
            needed: 3,
            buffered: 7,
        }) => {}
        other => panic!("{other:?}"),
    }

    // Size guard.
    let mut small = BoxDecoder::with_max_box_size(16);
    let mut buf = BytesMut::from(&b"\x00\x01a\x00\x20"[..]);
    assert!(matches!(
        small.decode(&mut buf),
        Err(DecodeError::BoxTooLarge { max: 16 })
    ));
}

#[test]
fn integer() {
    assert_eq!(123i64.to_amp().unwrap(), b"123");
    assert_eq!((-7i64).to_amp().unwrap(), b"-7");
    assert_eq!(i64::MIN.to_amp().unwrap(), b"-9223372036854775808");
    assert_eq!(i64::from_amp(b" +42 ").unwrap(), 42);
    assert!(i64::from_amp(b"").is_err());
    assert!(i64::from_amp(b"1.0").is_err());
    assert!(matches!(
        i64::from_amp(b"9223372036854775808"),
        Err(ArgError::OutOfRange(_))
    ));
}

#[test]
fn string_unicode_boolean() {
    assert_eq!(b"\xff\x00".to_vec().to_amp().unwrap(), b"\xff\x00");
    assert_eq!("é☃".to_string().to_amp().unwrap(), b"\xc3\xa9\xe2\x98\x83");
    assert_eq!(String::from_amp(b"\xc3\xa9").unwrap(), "é");
    assert!(String::from_amp(b"\xff").is_err());
    assert_eq!(true.to_amp().unwrap(), b"True");
    assert_eq!(false.to_amp().unwrap(), b"False");
    assert!(bool::from_amp(b"true").is_err());
}

#[test]
fn float_python_repr() {
    let cases: &[(f64, &str)] = &[
        (1.5, "1.5"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (0.1, "0.1"),
        (100.0, "100.0"),
        (1e15, "1000000000000000.0"),
        (1e16, "1e+16"),
        (1.5e16, "1.5e+16"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.25e-7, "1.25e-07"),
        (1e300, "1e+300"),
        (f64::MAX, "1.7976931348623157e+308"),
        (5e-324, "5e-324"),
        (123456.789, "123456.789"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
        (f64::NAN, "nan"),
    ];
    for (x, s) in cases {
        assert_eq!(python_float_repr(*x), *s, "{x:?}");
        let back = f64::from_amp(s.as_bytes()).unwrap();
        assert!(back == *x || (x.is_nan() && back.is_nan()));
    }
    assert_eq!(f64::from_amp(b"Infinity").unwrap(), f64::INFINITY);
    assert!(f64::from_amp(b"one").is_err());
}

#[test]
fn datetime() {
    let dt = AmpDateTime {
        year: 2010,
        month: 12,
        day: 25,
        hour: 0,
        minute: 0,
        second: 0,
        microsecond: 0,
        offset_minutes: 210,
    };
    // Microseconds are always written (unlike Python's isoformat()).
    assert_eq!(dt.to_amp().unwrap(), b"2010-12-25T00:00:00.000000+03:30");
    let nyc = AmpDateTime {
        offset_minutes: -300,
        microsecond: 54321,
        ..dt
    };
    assert_eq!(nyc.to_amp().unwrap(), b"2010-12-25T00:00:00.054321-05:00");
    assert_eq!(
        AmpDateTime::from_amp(b"2010-12-25T00:00:00.054321-05:00").unwrap(),
        nyc
    );
    assert_eq!(nyc.to_amp().unwrap().len(), 32);
    for bad in [
        &b"2010-12-25T00:00:00.054321"[..],
        b"2010-12-25T00:00:00.054321Z00:00",
        b"2010-02-30T00:00:00.000000+00:00",
        b"2010-12-25T24:00:00.000000+00:00",
        b"2010-12-25T00:00:00.000000+24:00",
        b"2010-12-25 00:00:00.000000+00:00",
    ] {
        assert!(AmpDateTime::from_amp(bad).is_err(), "{bad:?}");
    }
    assert!(AmpDateTime { month: 13, ..dt }.to_amp().is_err());
}

#[test]
fn decimal() {
    for s in [
        "1.10",
        "-0",
        "0",
        "Infinity",
        "-Infinity",
        "NaN",
        "sNaN",
        "1E+2",
        "-1.5E-7",
        "123",
        ".5",
        "5.",
        "NaN12",
    ] {
        let d = AmpDecimal::from_amp(s.as_bytes()).unwrap();
        assert_eq!(d.to_amp().unwrap(), s.as_bytes());
    }
    for bad in ["", "1.2.3", "E5", "1E", "abc", "--1", "1e+-2"] {
        assert!(AmpDecimal::from_amp(bad.as_bytes()).is_err(), "{bad}");
    }
    assert_eq!(AmpDecimal::from(-42).as_str(), "-42");
}

#[test]
fn list_of() {
    assert_eq!(ListOf::<i64>(vec![]).to_amp().unwrap(), b"");
    assert_eq!(
        ListOf(vec![1i64, 20, 500]).to_amp().unwrap(),
        b"\x00\x011\x00\x0220\x00\x03500"
    );
    assert_eq!(
        ListOf::<i64>::from_amp(b"\x00\x011\x00\x0220").unwrap(),
        ListOf(vec![1, 20])
    );
    assert!(matches!(
        ListOf::<i64>::from_amp(b"\x00\x051"),
        Err(ArgError::TruncatedList)
    ));
    assert!(matches!(
        ListOf::<i64>::from_amp(b"\x00"),
        Err(ArgError::TruncatedList)
    ));
    assert!(ListOf(vec![vec![0u8; 65536]]).to_amp().is_err());
    let nested = ListOf(vec![ListOf(vec![true]), ListOf(vec![])]);
    assert_eq!(nested.to_amp().unwrap(), b"\x00\x06\x00\x04True\x00\x00");
}

#[test]
fn amp_list() {
    let l = AmpList(vec![
        AmpBox::new().with("a", "7").with("b", "hello"),
        AmpBox::new().with("a", "9"),
    ]);
    let want = b"\x00\x01a\x00\x017\x00\x01b\x00\x05hello\x00\x00\x00\x01a\x00\x019\x00\x00";
    assert_eq!(l.to_amp().unwrap(), want);
    assert_eq!(AmpList::from_amp(want).unwrap(), l);
    assert_eq!(AmpList::from_amp(b"").unwrap(), AmpList(vec![]));
    assert!(AmpList::from_amp(b"\x00\x01a\x00\x017").is_err());
}

#[test]
fn framing() {
    let ans = frame::answer(b"1", AmpBox::new().with("total", "94"));
    assert_eq!(
        encode(&ans).unwrap(),
        b"\x00\x07_answer\x00\x011\x00\x05total\x00\x0294\x00\x00"
    );
    let err = frame::error(b"2", frame::UNKNOWN_ERROR_CODE, "Unhandled Command: 'nope'");
    assert_eq!(err.get("_error_code"), Some(&b"UNKNOWN"[..]));
    assert_eq!(
        Message::classify(err.clone()),
        Some(Message::Error {
            tag: b"2".to_vec(),
            code: b"UNKNOWN".to_vec(),
            description: "Unhandled Command: 'nope'".into()
        })
    );
    assert_eq!(Message::classify(err.clone()).unwrap().into_box(), err);
    let fire_and_forget = frame::request(b"Ping", None, AmpBox::new());
    assert!(!fire_and_forget.contains_key("_ask"));
    assert_eq!(
        Message::classify(fire_and_forget),
        Some(Message::Request {
            command: b"Ping".to_vec(),
            tag: None,
            args: AmpBox::new()
        })
    );
    assert_eq!(Message::classify(AmpBox::new().with("x", "y")), None);
    assert_eq!(frame::UNHANDLED_ERROR_CODE, b"UNHANDLED");
}
