//! Interoperability with Twisted's own AMP (`twisted.protocols.amp`).
//!
//! * A real Twisted client (`tests/interop/twisted_client.py`) against the
//!   real `mantle serve --amp`.
//! * A real Twisted server (`tests/interop/twisted_server.py`) called by
//!   the real `mantle amp call` and by `mantle_client::Client`, raw and
//!   typed, with every AMP argument type: each value goes through Twisted's
//!   parser and serializer, and Mantle's bytes are compared with the bytes
//!   Twisted writes for the same value.
//!
//! These need a Python with Twisted: `MANTLE_TEST_PYTHON`, else
//! `target/twisted-venv/bin/python` (which `scripts/test` creates; see
//! `support::python`). Without one they fail, saying so; they never skip.
//! AMP over TLS with a Twisted client is tested in `tls.rs`.

mod support;

use std::fmt::Debug;
use std::fs::File;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mantle_amp::{AmpBox, AmpDateTime, AmpDecimal, AmpFloat};
use mantle_client::{CallError, Client, ClientOptions, Status};
use mantle_live::{Arguments, Command, CommandError, NoError, RemoteError, arguments, codec};
use support::python::{PROCESS_WAIT, python, run_checks, script};
use support::*;

const PW: &str = "correct horse battery";

/// A running `twisted_server.py`; dropping it kills and reaps the process
/// (closing its standard input also stops it).
struct TwistedServer {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    addr: String,
    dir: tempfile::TempDir,
}

impl TwistedServer {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port_file = dir.path().join("port");
        let log = File::create(dir.path().join("server.log")).expect("log file");
        let child = Process::new(python())
            .arg("-u")
            .arg(script("twisted_server.py"))
            .arg(&port_file)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start twisted_server.py");
        let mut server = TwistedServer {
            child: Some(child),
            addr: String::new(),
            dir,
        };
        let deadline = Instant::now() + PROCESS_WAIT;
        loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.trim().parse::<u16>().ok())
            {
                server.addr = format!("127.0.0.1:{port}");
                return server;
            }
            let exited = server
                .child
                .as_mut()
                .expect("running")
                .try_wait()
                .expect("try_wait");
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "twisted_server.py did not start listening (exit {exited:?}); output:\n{}",
                    server.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server has printed (Twisted logs unhandled errors here).
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for TwistedServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn connect(addr: &str) -> Client {
    let mut options = ClientOptions::new(addr);
    options.reconnect = false;
    Client::connect(options)
        .await
        .unwrap_or_else(|e| panic!("connect to the Twisted server at {addr}: {e}"))
}

// ---------------------------------------------------------------------------
// (a) A Twisted client against `mantle serve --amp`.

#[test]
fn twisted_client_passes_its_checks_against_mantle_serve() {
    let python = python();
    let site = TestSite::init("admin");
    site.add_user("alice", PW);
    let (server, addr) = site.serve_with_amp();
    let (host, port) = addr.rsplit_once(':').expect("HOST:PORT");
    let expected = [
        "PASS connect: ",
        "PASS whoami-before-login: Unauthorized: ",
        "PASS login-wrong-password: Unauthorized: ",
        "PASS whoami-after-failed-login: Unauthorized: ",
        "PASS login: token of ",
        "PASS whoami: username=alice@localhost",
        "PASS unknown-command: UnhandledCommand: ",
        "PASS observe-no-such-model: NoSuchModel: ",
        "PASS observe-no-such-model-description: ",
        "PASS wrong-type-integer: BadArguments: argument \"since\"",
        "PASS wrong-type-unicode: BadArguments: argument \"username\"",
        "PASS missing-argument: BadArguments: missing argument \"password\"",
        "PASS still-logged-in: username=alice@localhost",
        "PASS second-connection-not-logged-in: Unauthorized: ",
        "PASS authenticate-bad-token: Unauthorized: ",
        "PASS authenticate: username=alice@localhost",
        "PASS whoami-after-authenticate: username=alice@localhost",
        "PASS observe-large-snapshot-announces-parts: parts=",
        "PASS snapshot-parts-join: ",
        "PASS delta-after-parts: ",
        "ALL PASSED",
    ];
    run_checks(
        python,
        "twisted_client.py",
        &[host, port, "alice", PW],
        &expected,
        &server,
    );
    server.stop_cleanly();
}

// ---------------------------------------------------------------------------
// (b) `mantle amp call` against a Twisted server.

#[test]
fn mantle_amp_call_talks_to_a_twisted_server() {
    let twisted = TwistedServer::start();
    let addr = twisted.addr.clone();
    let call = |args: &[&str]| {
        let mut all = vec!["amp", "call", addr.as_str()];
        all.extend_from_slice(args);
        mantle(&all)
    };

    assert_eq!(ok(call(&["Sum", "a=13", "b=81"])), "total=94\n");
    assert_eq!(
        ok(call(&["Echo", "text=héllo wörld ☃"])),
        "text=héllo wörld ☃\n"
    );
    assert_eq!(
        ok(call(&["Divide", "numerator=7", "denominator=2"])),
        "result=3.5\n"
    );
    assert_eq!(
        ok(call(&["Divide", "numerator=1", "denominator=3"])),
        "result=0.3333333333333333\n"
    );

    let o = call(&["Divide", "numerator=1", "denominator=0"]);
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    assert_eq!(stderr(&o), "ZERO_DIVISION: division by zero\n");
    assert_eq!(stdout(&o), "");

    // Twisted answers a command it has no responder for with UNHANDLED
    // (its `UnhandledCommand`), as Mantle's server does.
    let o = call(&["NoSuchCommand"]);
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "UNHANDLED: Unhandled Command: b'NoSuchCommand'\n"
    );

    // An argument Twisted cannot parse is an unexpected error in its
    // responder: UNKNOWN "Unknown Error" (and Twisted closes the
    // connection), where Mantle's server answers BAD_ARGUMENTS.
    let o = call(&["Sum", "a=thirteen", "b=81"]);
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    assert_eq!(stderr(&o), "UNKNOWN: Unknown Error\n");

    // The server is still there for new connections.
    assert_eq!(ok(call(&["Sum", "a=-5", "b=2"])), "total=-3\n");
    assert_eq!(
        ok(call(&["EchoBoolean", "value=True"])),
        "python=True\nreceived=True\nreencoded=True\nvalue=True\n"
    );

    drop(twisted);
    let o = call(&["Sum", "a=1", "b=2"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a closed port is unreachable: {}",
        stderr(&o)
    );
}

// ---------------------------------------------------------------------------
// (b) `mantle_client::Client` against a Twisted server.

arguments! {
    struct SumArgs { a: i64, b: i64 }
    struct SumAnswer { total: i64 }
    struct EchoArgs { text: String }
    struct EchoAnswer { text: String }
    struct DivideArgs { numerator: i64, denominator: i64 }
    struct DivideAnswer { result: f64 }
    /// One element of the Twisted server's `AmpList` arguments.
    #[derive(PartialEq)]
    struct Row {
        name: String,
        qty: i64,
        tags: Vec<String>,
        note: Option<String>,
    }
    struct DescribeArgs {
        numbers: Vec<i64>,
        negate: bool,
        when: AmpDateTime,
        price: AmpDecimal,
        rows: Vec<Row>,
    }
    struct DescribeAnswer {
        total: i64,
        count: i64,
        later: AmpDateTime,
        doubled: AmpDecimal,
        names: Vec<String>,
        rows: Vec<Row>,
        ok: bool,
    }
}

mantle_live::command!(Sum, SumArgs, SumAnswer, NoError);

mantle_live::command!(Echo, EchoArgs, EchoAnswer, NoError);

/// The Twisted server's `errors = {ZeroDivisionError: b"ZERO_DIVISION"}`.
#[derive(Debug, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "code")]
enum DivideError {
    #[serde(rename = "ZERO_DIVISION")]
    #[error("division by zero")]
    ZeroDivision,
}
impl CommandError for DivideError {}

mantle_live::command!(Divide, DivideArgs, DivideAnswer, DivideError);

mantle_live::command!(Describe, DescribeArgs, DescribeAnswer, NoError);

/// What an `Echo<Type>` command answers.
#[derive(Debug)]
struct EchoOut<T> {
    /// The value Twisted parsed and serialized back.
    value: T,
    /// The bytes Twisted received.
    received: Option<Vec<u8>>,
    /// Twisted's own serialization of the value it parsed.
    reencoded: Option<Vec<u8>>,
    /// Python's `repr` of the parsed value.
    python: String,
}

/// The Twisted server's `Echo<Type>` commands.
trait EchoCommand: Command<Error = NoError> {
    type Value: Clone + Debug + PartialEq;
    fn args(value: Self::Value) -> Self::Args;
    fn out(answer: Self::Answer) -> EchoOut<Self::Value>;
}

macro_rules! echo_commands {
    ($($cmd:ident, $args:ident, $answer:ident: $t:ty;)*) => {$(
        arguments! {
            struct $args { value: $t }
            struct $answer {
                value: $t,
                received: Option<Bytes>,
                reencoded: Option<Bytes>,
                python: String,
            }
        }
        mantle_live::command!($cmd, $args, $answer, NoError);
        impl EchoCommand for $cmd {
            type Value = $t;
            fn args(value: $t) -> $args {
                $args { value }
            }
            fn out(a: $answer) -> EchoOut<$t> {
                EchoOut {
                    value: a.value,
                    received: a.received.map(|b| b.to_vec()),
                    reencoded: a.reencoded.map(|b| b.to_vec()),
                    python: a.python,
                }
            }
        }
    )*};
}

echo_commands! {
    EchoInteger, EchoIntegerArgs, EchoIntegerAnswer: i64;
    EchoString, EchoStringArgs, EchoStringAnswer: Bytes;
    EchoUnicode, EchoUnicodeArgs, EchoUnicodeAnswer: String;
    EchoFloat, EchoFloatArgs, EchoFloatAnswer: f64;
    EchoAmpFloat, EchoAmpFloatArgs, EchoAmpFloatAnswer: AmpFloat;
    EchoListOfAmpFloat, EchoListOfAmpFloatArgs, EchoListOfAmpFloatAnswer: Vec<AmpFloat>;
    EchoBoolean, EchoBooleanArgs, EchoBooleanAnswer: bool;
    EchoDateTime, EchoDateTimeArgs, EchoDateTimeAnswer: AmpDateTime;
    EchoDecimal, EchoDecimalArgs, EchoDecimalAnswer: AmpDecimal;
    EchoListOfInteger, EchoListOfIntegerArgs, EchoListOfIntegerAnswer: Vec<i64>;
    EchoListOfUnicode, EchoListOfUnicodeArgs, EchoListOfUnicodeAnswer: Vec<String>;
    EchoListOfFloat, EchoListOfFloatArgs, EchoListOfFloatAnswer: Vec<f64>;
    EchoListOfDateTime, EchoListOfDateTimeArgs, EchoListOfDateTimeAnswer: Vec<AmpDateTime>;
    EchoListOfListOfInteger, EchoListOfListOfIntegerArgs, EchoListOfListOfIntegerAnswer: Vec<Vec<i64>>;
    EchoAmpList, EchoAmpListArgs, EchoAmpListAnswer: Vec<Row>;
    EchoOptionalInteger, EchoOptionalIntegerArgs, EchoOptionalIntegerAnswer: Option<i64>;
}

/// Mantle's AMP bytes for `value` as `C`'s argument (`None`: left out).
fn mantle_bytes<C: EchoCommand>(value: &C::Value) -> Option<Vec<u8>> {
    let json = serde_json::to_value(C::args(value.clone())).expect("serialize arguments");
    let b = codec::to_amp(json.as_object().expect("an object"), C::Args::schema())
        .unwrap_or_else(|e| panic!("Mantle cannot encode {value:?} for {}: {e}", C::NAME));
    b.get("value").map(<[u8]>::to_vec)
}

fn show(b: &Option<Vec<u8>>) -> String {
    match b {
        Some(b) => format!("b\"{}\"", b.escape_ascii()),
        None => "(absent)".into(),
    }
}

/// Sends `sent` through Twisted's `Echo<Type>` and records in `problems`
/// every way the result differs from what Twisted itself would do:
/// * the value Twisted parsed and sent back must decode to `expected`
///   (`sent`, unless Twisted normalizes it, as `Decimal` text);
/// * Twisted must have received Mantle's bytes unchanged;
/// * Mantle's encoding of the value it decoded must be the bytes Twisted
///   wrote for it;
/// * when `sent == expected`, Mantle's encoding of `sent` must be the bytes
///   Twisted writes for the same value.
async fn echo<C: EchoCommand>(
    client: &Client,
    problems: &mut Vec<String>,
    sent: C::Value,
    expected: C::Value,
) {
    let name = C::NAME;
    let out = match client.call::<C>(C::args(sent.clone())).await {
        Ok(a) => C::out(a),
        Err(e) => {
            problems.push(format!("{name} {sent:?}: the call failed: {e}"));
            return;
        }
    };
    let sent_bytes = mantle_bytes::<C>(&sent);
    if out.value != expected {
        problems.push(format!(
            "{name} {sent:?}: came back as {:?}, expected {expected:?} (Python: {})",
            out.value, out.python
        ));
    }
    if out.received != sent_bytes {
        problems.push(format!(
            "{name} {sent:?}: Mantle sent {} but Twisted received {}",
            show(&sent_bytes),
            show(&out.received)
        ));
    }
    let back_bytes = mantle_bytes::<C>(&out.value);
    if back_bytes != out.reencoded {
        problems.push(format!(
            "{name}: Twisted wrote {} for {} but Mantle encodes the value it decoded ({:?}) as {}",
            show(&out.reencoded),
            out.python,
            out.value,
            show(&back_bytes)
        ));
    }
    if sent == expected && sent_bytes != out.reencoded {
        problems.push(format!(
            "{name} {sent:?}: Mantle encodes it as {} but Twisted encodes the same value ({}) as {}",
            show(&sent_bytes),
            out.python,
            show(&out.reencoded)
        ));
    }
}

fn dt(text: &str) -> AmpDateTime {
    <AmpDateTime as mantle_amp::AmpArgument>::from_amp(text.as_bytes())
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn dec(text: &str) -> AmpDecimal {
    AmpDecimal::parse(text).unwrap_or_else(|| panic!("{text} is not a decimal"))
}

fn row(name: &str, qty: i64, tags: &[&str], note: Option<&str>) -> Row {
    Row {
        name: name.into(),
        qty,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        note: note.map(Into::into),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_argument_type_round_trips_through_twisted_byte_for_byte() {
    let twisted = TwistedServer::start();
    let client = connect(&twisted.addr).await;
    let mut problems = Vec::new();
    let p = &mut problems;

    for v in [0, 1, -1, 94, i64::MAX, i64::MIN] {
        echo::<EchoInteger>(&client, p, v, v).await;
    }

    let all_bytes = Bytes::from((0..=255u8).collect::<Vec<_>>());
    for v in [Bytes::new(), all_bytes, Bytes::from_static(b"\x00\r\n\x00")] {
        echo::<EchoString>(&client, p, v.clone(), v).await;
    }

    for v in [
        String::new(),
        "hello".into(),
        "héllo wörld ☃ 𝄞 \u{0} \r\n\t \u{feff}".into(),
        "x".repeat(mantle_amp::MAX_VALUE_LENGTH),
    ] {
        echo::<EchoUnicode>(&client, p, v.clone(), v).await;
    }

    for v in [
        0.0,
        -0.0,
        0.1,
        1.5,
        -2.5,
        1.0 / 3.0,
        1e16,
        1e22,
        1e-5,
        0.0001,
        123456789.125,
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        -1.7976931348623157e308,
    ] {
        echo::<EchoFloat>(&client, p, v, v).await;
    }
    // Typed calls carry non-finite floats as AmpFloat.
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.5, -0.0] {
        echo::<EchoAmpFloat>(&client, p, AmpFloat(v), AmpFloat(v)).await;
    }
    let v: Vec<AmpFloat> = [f64::NAN, 2.5, f64::NEG_INFINITY, f64::INFINITY]
        .into_iter()
        .map(AmpFloat)
        .collect();
    echo::<EchoListOfAmpFloat>(&client, p, v.clone(), v).await;

    for v in [true, false] {
        echo::<EchoBoolean>(&client, p, v, v).await;
    }

    for v in [
        "2012-01-23T12:34:56.054321-01:23",
        // UTC: Twisted writes a zero offset as -00:00.
        "2010-12-25T00:00:00.000000-00:00",
        "2010-12-25T00:00:00.000000+03:30",
        "2000-02-29T12:00:00.000001+14:00",
        "9999-12-31T23:59:59.999999+23:59",
        "0001-01-01T00:00:00.000000-23:59",
    ] {
        echo::<EchoDateTime>(&client, p, dt(v), dt(v)).await;
    }
    // Either sign of a zero offset is UTC.
    echo::<EchoDateTime>(
        &client,
        p,
        dt("2010-12-25T00:00:00.000000+00:00"),
        dt("2010-12-25T00:00:00.000000-00:00"),
    )
    .await;

    // Decimal text as Python's str(Decimal) writes it comes back unchanged.
    for v in [
        "0",
        "-0",
        "1.10",
        "-1",
        "1E+2",
        "1.5E+2",
        "1E-7",
        "0.000001",
        "0E-10",
        "123456789012345678901234567890.0000000001",
        "Infinity",
        "-Infinity",
        "NaN",
        "-NaN",
        "sNaN",
        "NaN123",
    ] {
        echo::<EchoDecimal>(&client, p, dec(v), dec(v)).await;
    }
    // Other spellings Python accepts come back in Python's form (Mantle
    // keeps a Decimal's text as it is, so they differ as text).
    for (sent, normal) in [
        ("1e2", "1E+2"),
        ("+5", "5"),
        ("1.", "1"),
        (".5", "0.5"),
        ("0.0000001", "1E-7"),
        ("inf", "Infinity"),
        ("-infinity", "-Infinity"),
        ("nan", "NaN"),
        ("snan", "sNaN"),
    ] {
        echo::<EchoDecimal>(&client, p, dec(sent), dec(normal)).await;
    }

    for v in [vec![], vec![1, 2, 3], vec![i64::MIN, 0, i64::MAX]] {
        echo::<EchoListOfInteger>(&client, p, v.clone(), v).await;
    }
    for v in [
        vec![],
        vec![String::new()],
        vec!["a".into(), "é☃".into(), String::new()],
    ] {
        echo::<EchoListOfUnicode>(&client, p, v.clone(), v).await;
    }
    for v in [vec![], vec![0.1, -0.0, 1e16, 5e-324]] {
        echo::<EchoListOfFloat>(&client, p, v.clone(), v).await;
    }
    let dates = vec![
        dt("2012-01-23T12:34:56.054321-01:23"),
        dt("2010-12-25T00:00:00.000000-00:00"),
    ];
    echo::<EchoListOfDateTime>(&client, p, dates.clone(), dates).await;
    for v in [vec![], vec![vec![]], vec![vec![1, 2], vec![], vec![-3]]] {
        echo::<EchoListOfListOfInteger>(&client, p, v.clone(), v).await;
    }
    for v in [
        vec![],
        vec![row("a", 1, &[], None)],
        vec![
            row("é☃", -2, &["x", "y"], Some("n")),
            row("", 0, &[""], Some("")),
            row("last", i64::MAX, &["z"], None),
        ],
    ] {
        echo::<EchoAmpList>(&client, p, v.clone(), v).await;
    }
    for v in [None, Some(5), Some(-7)] {
        echo::<EchoOptionalInteger>(&client, p, v, v).await;
    }

    assert!(
        problems.is_empty(),
        "{} difference(s) between Mantle's AMP and Twisted's:\n  {}\nTwisted server log:\n{}",
        problems.len(),
        problems.join("\n  "),
        twisted.log()
    );
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_commands_and_errors_work_against_a_twisted_server() {
    let twisted = TwistedServer::start();
    let client = connect(&twisted.addr).await;

    let a = client.call::<Sum>(SumArgs { a: 13, b: 81 }).await.unwrap();
    assert_eq!(a.total, 94);
    let text = "héllo wörld ☃ 𝄞".to_string();
    let a = client
        .call::<Echo>(EchoArgs { text: text.clone() })
        .await
        .unwrap();
    assert_eq!(a.text, text);

    for (n, d, want) in [
        (7, 2, 3.5),
        (-7, 2, -3.5),
        (1, 3, 1.0 / 3.0),
        (i64::MAX, 1, i64::MAX as f64),
    ] {
        let a = client
            .call::<Divide>(DivideArgs {
                numerator: n,
                denominator: d,
            })
            .await
            .unwrap();
        assert_eq!(a.result.to_bits(), want.to_bits(), "{n} / {d}");
    }
    let e = client
        .call::<Divide>(DivideArgs {
            numerator: 1,
            denominator: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e, CallError::Command(DivideError::ZeroDivision));

    // A computation on Twisted's side over ListOf, Boolean, DateTime,
    // Decimal and AmpList, checked against the same computation here.
    let a = client
        .call::<Describe>(DescribeArgs {
            numbers: vec![1, 2, 3, -10],
            negate: true,
            when: dt("2012-02-28T23:59:59.999999-01:23"),
            price: dec("1.10"),
            rows: vec![
                row("apples", 3, &["fruit", "red"], Some("crisp")),
                row("bread", 1, &[], None),
            ],
        })
        .await
        .unwrap();
    assert_eq!(a.total, 4);
    assert_eq!(a.count, 4);
    assert_eq!(a.later, dt("2012-03-01T00:00:00.000000-01:23"));
    assert_eq!(a.doubled, dec("2.20"));
    assert_eq!(a.names, ["apples", "bread"]);
    assert_eq!(
        a.rows,
        [
            row("APPLES", 6, &["red", "fruit"], Some("crisp!")),
            row("BREAD", 2, &[], None),
        ]
    );
    assert!(!a.ok);

    // Raw boxes: any command, any bytes.
    let a = client
        .call_box("Sum", AmpBox::new().with("a", "40").with("b", "2"))
        .await
        .unwrap();
    assert_eq!(a, AmpBox::new().with("total", "42"));
    // Non-finite floats travel as Python writes them.
    for v in ["nan", "inf", "-inf"] {
        let a = client
            .call_box("EchoFloat", AmpBox::new().with("value", v))
            .await
            .unwrap();
        assert_eq!(a.get("value"), Some(v.as_bytes()), "{v}");
        assert_eq!(a.get("reencoded"), Some(v.as_bytes()), "{v}");
    }

    // Errors Twisted sends as they are: a code and a UTF-8 description.
    let description = "Ünïcödé ☃ description, with: colons";
    let e = client
        .call_box(
            "Fail",
            AmpBox::new()
                .with("code", "MY_CODE")
                .with("description", description),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e,
        CallError::Remote(RemoteError::new("MY_CODE", description))
    );

    // A command Twisted does not know: UNHANDLED, as from Mantle's server.
    let e = client
        .call_box("NoSuchCommand", AmpBox::new())
        .await
        .unwrap_err();
    assert_eq!(
        e,
        CallError::Remote(RemoteError::new(
            "UNHANDLED",
            "Unhandled Command: b'NoSuchCommand'"
        ))
    );

    // Many calls in flight at once each get their own answer.
    let calls = (0..64i64).map(|i| {
        let client = client.clone();
        async move { client.call::<Sum>(SumArgs { a: i, b: i * i }).await }
    });
    let answers = futures::future::join_all(calls).await;
    for (i, a) in (0..64i64).zip(answers) {
        assert_eq!(a.unwrap().total, i + i * i);
    }
    client.close();

    // An argument Twisted cannot parse: UNKNOWN "Unknown Error", then
    // Twisted closes the connection (AMP's QuitBox).
    let client = connect(&twisted.addr).await;
    let mut status = client.status();
    let e = client
        .call_box("Sum", AmpBox::new().with("a", "thirteen").with("b", "1"))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        CallError::Remote(RemoteError::new("UNKNOWN", "Unknown Error"))
    );
    tokio::time::timeout(
        Duration::from_secs(30),
        status.wait_for(|s| *s == Status::Offline),
    )
    .await
    .expect("Twisted closes the connection after an unexpected error")
    .expect("status");
    let e = client
        .call::<Sum>(SumArgs { a: 1, b: 2 })
        .await
        .unwrap_err();
    assert_eq!(e, CallError::ConnectionLost);
}
