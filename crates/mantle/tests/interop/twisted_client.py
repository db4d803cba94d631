"""A real Twisted AMP client, for checking Mantle's AMP server against it.

Usage: python twisted_client.py HOST PORT USER PASSWORD

Declares Mantle's built-in commands as Twisted ``amp.Command`` classes (with
their error codes mapped to exceptions, so Twisted's own error mapping is
exercised) and runs a series of checks against a Mantle AMP listener where
USER has PASSWORD. Prints one line per check, ``PASS name: detail`` or
``FAIL name: detail``, and exits 0 only if every check passed (1 if one
failed, 2 if the whole run broke, for example the connection).
"""

import json

from twisted.internet import defer, endpoints
from twisted.protocols import amp

from amp_checks import TIMEOUT, Checks, Login, Unauthorized, Whoami, react


class NoSuchModel(Exception):
    pass


class BadArguments(Exception):
    pass


class Authenticate(amp.Command):
    arguments = [(b"token", amp.Unicode())]
    response = [(b"username", amp.Unicode())]
    errors = {Unauthorized: b"UNAUTHORIZED"}


class Observe(amp.Command):
    arguments = [(b"model", amp.Unicode()), (b"since", amp.Integer(optional=True))]
    response = [
        (b"sequence", amp.Integer()),
        (b"resumed", amp.Boolean()),
        (b"snapshot", amp.Unicode(optional=True)),
        (b"parts", amp.Integer(optional=True)),
    ]
    errors = {
        NoSuchModel: b"NO_SUCH_MODEL",
        Unauthorized: b"UNAUTHORIZED",
        BadArguments: b"BAD_ARGUMENTS",
    }


class ObserveSinceAsText(amp.Command):
    """``Observe`` with ``since`` declared as Unicode: a wrong-typed Integer."""

    commandName = b"Observe"
    arguments = [(b"model", amp.Unicode()), (b"since", amp.Unicode())]
    response = [(b"sequence", amp.Integer())]
    errors = {BadArguments: b"BAD_ARGUMENTS", NoSuchModel: b"NO_SUCH_MODEL"}


class LoginWithBytes(amp.Command):
    """``Login`` with ``username`` declared as String: lets us send bytes that
    are not UTF-8, which a Unicode argument must refuse."""

    commandName = b"Login"
    arguments = [(b"username", amp.String()), (b"password", amp.Unicode())]
    response = [(b"token", amp.Unicode())]
    errors = {BadArguments: b"BAD_ARGUMENTS", Unauthorized: b"UNAUTHORIZED"}


class LoginWithoutPassword(amp.Command):
    """``Login`` missing a required argument."""

    commandName = b"Login"
    arguments = [(b"username", amp.Unicode())]
    response = [(b"token", amp.Unicode())]
    errors = {BadArguments: b"BAD_ARGUMENTS", Unauthorized: b"UNAUTHORIZED"}


class NoSuchCommand(amp.Command):
    arguments = []
    response = []


# Pushed by the server (no answer wanted).
class Delta(amp.Command):
    arguments = [
        (b"model", amp.Unicode()),
        (b"sequence", amp.Integer()),
        (b"delta", amp.Unicode()),
    ]
    requiresAnswer = False


class Resync(amp.Command):
    arguments = [(b"model", amp.Unicode()), (b"reason", amp.Unicode())]
    requiresAnswer = False


class Ended(amp.Command):
    arguments = [
        (b"model", amp.Unicode()),
        (b"code", amp.Unicode()),
        (b"reason", amp.Unicode()),
    ]
    requiresAnswer = False


class SnapshotPart(amp.Command):
    arguments = [
        (b"model", amp.Unicode()),
        (b"sequence", amp.Integer()),
        (b"part", amp.Integer()),
        (b"parts", amp.Integer()),
        (b"text", amp.Unicode()),
    ]
    requiresAnswer = False


# The lists example's commands (served by `mantle serve`).
class OpenList(amp.Command):
    arguments = [(b"name", amp.Unicode())]
    response = [(b"handle", amp.Integer()), (b"model", amp.Unicode())]


class AddEntry(amp.Command):
    arguments = [(b"_handle", amp.Integer()), (b"text", amp.Unicode())]
    response = [(b"id", amp.Integer()), (b"revision", amp.Integer())]


class Observer(amp.AMP):
    """An AMP client that takes Mantle's pushes: deltas, resyncs, the ends
    of observations and the parts of a snapshot too long for one AMP
    value."""

    def __init__(self):
        amp.AMP.__init__(self)
        self.parts = []
        self.deltas = []
        self.resyncs = []
        self.ended = []
        self.waiting = None

    def _wake(self):
        if self.waiting is not None:
            d, self.waiting = self.waiting, None
            d.callback(None)

    def until(self, cond):
        """Fires once ``cond()`` holds (checked after every push)."""

        @defer.inlineCallbacks
        def loop():
            while not cond():
                self.waiting = defer.Deferred()
                yield self.waiting

        return loop()

    @SnapshotPart.responder
    def snapshot_part(self, model, sequence, part, parts, text):
        self.parts.append((model, sequence, part, parts, text))
        self._wake()
        return {}

    @Delta.responder
    def delta(self, model, sequence, delta):
        self.deltas.append((model, sequence, json.loads(delta)))
        self._wake()
        return {}

    @Resync.responder
    def resync(self, model, reason):
        self.resyncs.append((model, reason))
        self._wake()
        return {}

    @Ended.responder
    def ended(self, model, code, reason):
        self.ended.append((model, code, reason))
        self._wake()
        return {}


def _accepts_username(got, user):
    # Mantle answers the account's primary address; `user add alice` on a
    # localhost site makes it alice@localhost.
    return got == user or got.startswith(user + "@")


@defer.inlineCallbacks
def run(reactor, host, port, user, password):
    port = int(port)
    c = Checks()
    endpoint = endpoints.TCP4ClientEndpoint(reactor, host, port, timeout=TIMEOUT)
    proto = yield endpoints.connectProtocol(endpoint, amp.AMP())
    c.ok("connect", "%s:%d" % (host, port))

    yield c.expect_error("whoami-before-login", proto.callRemote(Whoami), Unauthorized)

    yield c.expect_error(
        "login-wrong-password",
        proto.callRemote(Login, username=user, password=password + "-wrong"),
        Unauthorized,
    )

    yield c.expect_error(
        "whoami-after-failed-login", proto.callRemote(Whoami), Unauthorized
    )

    answer = yield proto.callRemote(Login, username=user, password=password)
    token = answer["token"]
    c.check(
        "login",
        isinstance(token, str) and len(token) >= 16,
        "token of %d characters" % len(token),
    )

    answer = yield proto.callRemote(Whoami)
    me = answer["username"]
    c.check("whoami", _accepts_username(me, user), "username=%s" % me)

    e = yield c.expect_error(
        "unknown-command", proto.callRemote(NoSuchCommand), amp.UnhandledCommand
    )

    e = yield c.expect_error(
        "observe-no-such-model",
        proto.callRemote(Observe, model="no-such-model:here"),
        NoSuchModel,
    )
    if e is not None:
        c.check(
            "observe-no-such-model-description",
            "no-such-model:here" in str(e),
            "description names the model: %s" % e,
        )

    yield c.expect_error(
        "wrong-type-integer",
        proto.callRemote(ObserveSinceAsText, model="no-such-model:here", since="yesterday"),
        BadArguments,
    )

    yield c.expect_error(
        "wrong-type-unicode",
        proto.callRemote(LoginWithBytes, username=b"\xff\xfe", password=password),
        BadArguments,
    )

    yield c.expect_error(
        "missing-argument",
        proto.callRemote(LoginWithoutPassword, username=user),
        BadArguments,
    )

    # The errors above did not cost the connection or the login.
    answer = yield proto.callRemote(Whoami)
    c.check(
        "still-logged-in",
        answer["username"] == me,
        "username=%s after the errors" % answer["username"],
    )
    proto.transport.loseConnection()

    # The token logs a second connection in.
    proto2 = yield endpoints.connectProtocol(endpoint, amp.AMP())
    yield c.expect_error("second-connection-not-logged-in", proto2.callRemote(Whoami), Unauthorized)
    yield c.expect_error(
        "authenticate-bad-token",
        proto2.callRemote(Authenticate, token="not-a-token"),
        Unauthorized,
    )
    answer = yield proto2.callRemote(Authenticate, token=token)
    c.check("authenticate", answer["username"] == me, "username=%s" % answer["username"])
    answer = yield proto2.callRemote(Whoami)
    c.check(
        "whoami-after-authenticate",
        answer["username"] == me,
        "username=%s" % answer["username"],
    )
    proto2.transport.loseConnection()

    yield large_snapshot_in_parts(c, endpoint, token)
    return c.summary()


@defer.inlineCallbacks
def large_snapshot_in_parts(c, endpoint, token):
    """A list too large for one AMP value: Observe announces ``parts``, the
    ``SnapshotPart`` pushes join into the snapshot's JSON, then deltas."""
    proto = yield endpoints.connectProtocol(endpoint, Observer())
    yield proto.callRemote(Authenticate, token=token)
    opened = yield proto.callRemote(OpenList, name="twisted-big")
    text = "\u20ac" * 400  # 1,200 bytes of UTF-8 per entry
    for _ in range(120):
        yield proto.callRemote(AddEntry, _handle=opened["handle"], text=text)
    answer = yield proto.callRemote(Observe, model=opened["model"])
    parts = answer.get("parts")
    c.check(
        "observe-large-snapshot-announces-parts",
        answer.get("snapshot") is None and isinstance(parts, int) and parts >= 2,
        "parts=%r at sequence %d" % (parts, answer["sequence"]),
    )
    if not parts:
        return
    yield proto.until(lambda: len(proto.parts) >= parts)
    in_order = [p[2] for p in proto.parts] == list(range(1, parts + 1))
    snapshot = json.loads("".join(p[4] for p in proto.parts))
    entries = snapshot["entries"]
    c.check(
        "snapshot-parts-join",
        in_order and len(entries) == 120 and all(e["text"] == text for e in entries),
        "%d parts in order=%s, %d entries" % (len(proto.parts), in_order, len(entries)),
    )
    added = yield proto.callRemote(AddEntry, _handle=opened["handle"], text="after")
    yield proto.until(lambda: proto.deltas or proto.resyncs)
    model, sequence, delta = proto.deltas[0] if proto.deltas else (None, None, None)
    c.check(
        "delta-after-parts",
        not proto.resyncs
        and sequence == answer["sequence"] + 1
        and delta["entry"]["id"] == added["id"],
        "sequence %r after %d, resyncs %r" % (sequence, answer["sequence"], proto.resyncs),
    )
    proto.transport.loseConnection()


if __name__ == "__main__":
    react(run, "twisted_client.py HOST PORT USER PASSWORD")
