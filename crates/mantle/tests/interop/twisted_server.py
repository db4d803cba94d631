"""A real Twisted AMP server, for checking Mantle's AMP client against it.

Usage: python twisted_server.py PORT_FILE

Listens on 127.0.0.1 on a free port, writes the port number to PORT_FILE
(atomically: a temporary file renamed into place) and serves until its
standard input closes (so it cannot outlive the test that started it) or
it is killed.

Commands (all declared with Twisted's own argument types, so every value
Mantle sends is parsed by Twisted's parser and every answer is written by
Twisted's serializer):

* ``Sum(a: Integer, b: Integer) -> total: Integer``
* ``Echo(text: Unicode) -> text: Unicode``
* ``Divide(numerator: Integer, denominator: Integer) -> result: Float``,
  answering error code ``ZERO_DIVISION`` for a zero denominator.
* ``Fail(code: String, description: Unicode)``: answers that error.
* ``Describe``: a computation over ``ListOf(Integer)``, ``Boolean``,
  ``DateTime``, ``Decimal`` and an ``AmpList`` (see ``describe``).
* ``Echo<Type>(value: <Type>) -> value: <Type>, received: String,
  reencoded: String, python: Unicode`` for every type in ``ECHO_TYPES``:
  ``value`` is the parsed argument sent back (re-serialized by Twisted),
  ``received`` the raw bytes Twisted got, ``reencoded`` Twisted's own
  serialization of the parsed value and ``python`` its ``repr``. So a client
  can check both that values round-trip and that its encoding is
  byte-for-byte the one Twisted would have written.
"""

import datetime
import os
import sys

from twisted.internet import endpoints, protocol, reactor, stdio
from twisted.protocols import amp


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Echo(amp.Command):
    arguments = [(b"text", amp.Unicode())]
    response = [(b"text", amp.Unicode())]


class Divide(amp.Command):
    arguments = [(b"numerator", amp.Integer()), (b"denominator", amp.Integer())]
    response = [(b"result", amp.Float())]
    errors = {ZeroDivisionError: b"ZERO_DIVISION"}


def _row():
    return [
        (b"name", amp.Unicode()),
        (b"qty", amp.Integer()),
        (b"tags", amp.ListOf(amp.Unicode())),
        (b"note", amp.Unicode(optional=True)),
    ]


class Fail(amp.Command):
    """Answers with the error ``code`` and ``description`` given."""

    arguments = [(b"code", amp.String()), (b"description", amp.Unicode())]
    response = []


class Describe(amp.Command):
    arguments = [
        (b"numbers", amp.ListOf(amp.Integer())),
        (b"negate", amp.Boolean()),
        (b"when", amp.DateTime()),
        (b"price", amp.Decimal()),
        (b"rows", amp.AmpList(_row())),
    ]
    response = [
        (b"total", amp.Integer()),
        (b"count", amp.Integer()),
        (b"later", amp.DateTime()),
        (b"doubled", amp.Decimal()),
        (b"names", amp.ListOf(amp.Unicode())),
        (b"rows", amp.AmpList(_row())),
        (b"ok", amp.Boolean()),
    ]


# Echo<Name>: one command per argument type.
ECHO_TYPES = {
    "Integer": amp.Integer,
    "String": amp.String,
    "Unicode": amp.Unicode,
    "Float": amp.Float,
    # The same wire type, for Mantle's AmpFloat (which carries nan and inf).
    "AmpFloat": amp.Float,
    "ListOfAmpFloat": lambda: amp.ListOf(amp.Float()),
    "Boolean": amp.Boolean,
    "DateTime": amp.DateTime,
    "Decimal": amp.Decimal,
    "ListOfInteger": lambda: amp.ListOf(amp.Integer()),
    "ListOfUnicode": lambda: amp.ListOf(amp.Unicode()),
    "ListOfFloat": lambda: amp.ListOf(amp.Float()),
    "ListOfDateTime": lambda: amp.ListOf(amp.DateTime()),
    "ListOfListOfInteger": lambda: amp.ListOf(amp.ListOf(amp.Integer())),
    "AmpList": lambda: amp.AmpList(_row()),
    "OptionalInteger": lambda: amp.Integer(optional=True),
}


def _echo_command(name, make):
    return type(
        "Echo" + name,
        (amp.Command,),
        {
            "arguments": [(b"value", make())],
            "response": [
                (b"value", make()),
                (b"received", amp.String(optional=True)),
                (b"reencoded", amp.String(optional=True)),
                (b"python", amp.Unicode()),
            ],
        },
    )


ECHO_COMMANDS = {name: _echo_command(name, make) for name, make in ECHO_TYPES.items()}


def sum_(self, a, b):
    return {"total": a + b}


def echo(self, text):
    return {"text": text}


def divide(self, numerator, denominator):
    return {"result": numerator / denominator}


def fail(self, code, description):
    # Not one of the command's declared errors: Twisted sends a
    # RemoteAmpError's code and description as they are.
    raise amp.RemoteAmpError(code, description)


def describe(self, numbers, negate, when, price, rows):
    total = sum(numbers)
    return {
        "total": -total if negate else total,
        "count": len(numbers),
        "later": when + datetime.timedelta(days=1, microseconds=1),
        "doubled": price * 2,
        "names": [r["name"] for r in rows],
        "rows": [
            {
                "name": r["name"].upper(),
                "qty": r["qty"] * 2,
                "tags": list(reversed(r["tags"])),
                "note": None if r["note"] is None else r["note"] + "!",
            }
            for r in rows
        ],
        "ok": not negate,
    }


def _readable(value):
    # Twisted's fixed-offset tzinfo has no useful repr: show datetimes in
    # ISO form instead.
    if isinstance(value, datetime.datetime):
        return "datetime(%s)" % value.isoformat()
    if isinstance(value, list):
        return "[%s]" % ", ".join(_readable(v) for v in value)
    if isinstance(value, dict):
        return "{%s}" % ", ".join("%r: %s" % (k, _readable(v)) for k, v in value.items())
    return repr(value)


def _short_repr(value):
    # A repr can be longer than AMP's 65,535-byte value limit.
    text = _readable(value)
    return text if len(text) <= 1000 else text[:1000] + "..."


def _make_echo(argtype):
    def echo_value(self, value):
        raw = self.last_box.get(b"value")
        return {
            "value": value,
            "received": raw,
            "reencoded": None if value is None else argtype.toStringProto(value, self),
            "python": _short_repr(value),
        }

    return echo_value


# Responders are collected by CommandLocator's metaclass when the next
# locator class (Server, below) is defined.
Sum.responder(sum_)
Echo.responder(echo)
Divide.responder(divide)
Describe.responder(describe)
Fail.responder(fail)
for _name, _command in ECHO_COMMANDS.items():
    _command.responder(_make_echo(ECHO_TYPES[_name]()))


class Server(amp.AMP):
    last_box = None

    def ampBoxReceived(self, box):
        # Responders run synchronously from here, so they see their own box.
        self.last_box = box
        super().ampBoxReceived(box)


class StopOnEof(protocol.Protocol):
    """Stops the reactor when standard input closes."""

    def connectionLost(self, reason):
        if reactor.running:
            reactor.stop()


def main(port_file):
    factory = protocol.Factory.forProtocol(Server)
    endpoint = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")

    def listening(port):
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port.getHost().port)
        os.replace(tmp, port_file)

    def failed(failure):
        sys.stderr.write("twisted_server: cannot listen: %s\n" % failure.getErrorMessage())
        reactor.stop()

    endpoint.listen(factory).addCallbacks(listening, failed)
    stdio.StandardIO(StopOnEof())
    reactor.run()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: twisted_server.py PORT_FILE")
    main(sys.argv[1])
