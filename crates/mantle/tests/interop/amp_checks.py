"""What the Twisted client scripts share: Mantle's login commands, checks
that print ``PASS name: detail`` or ``FAIL name: detail``, and running the
checks under a time-out with the exit codes the tests read (0 every check
passed, 1 one failed, 2 the whole run broke).

Imported by ``twisted_client.py`` and ``twisted_tls_client.py``, which
Python finds beside them.
"""

import sys

from twisted.internet import defer, task
from twisted.protocols import amp

TIMEOUT = 60


class Unauthorized(Exception):
    pass


class Login(amp.Command):
    arguments = [(b"username", amp.Unicode()), (b"password", amp.Unicode())]
    response = [(b"token", amp.Unicode())]
    errors = {Unauthorized: b"UNAUTHORIZED"}


class Whoami(amp.Command):
    arguments = []
    response = [(b"username", amp.Unicode())]
    errors = {Unauthorized: b"UNAUTHORIZED"}


class Checks:
    def __init__(self):
        self.failed = 0

    def ok(self, name, detail):
        print("PASS %s: %s" % (name, detail), flush=True)

    def fail(self, name, detail):
        self.failed += 1
        print("FAIL %s: %s" % (name, detail), flush=True)

    def check(self, name, cond, detail):
        (self.ok if cond else self.fail)(name, detail)

    @defer.inlineCallbacks
    def expect_error(self, name, d, exc_type, code=None):
        """Checks that the call ``d`` fails with ``exc_type`` (and, for
        RemoteAmpError subclasses, ``code``)."""
        try:
            result = yield d
        except exc_type as e:
            got = getattr(e, "errorCode", None)
            if code is not None and got != code:
                self.fail(name, "%s with code %r, expected %r" % (type(e).__name__, got, code))
            else:
                self.ok(name, "%s: %s" % (type(e).__name__, _description(e)))
            return e
        except Exception as e:
            self.fail(name, "expected %s, got %s: %s" % (exc_type.__name__, type(e).__name__, e))
        else:
            self.fail(name, "expected %s, got an answer %r" % (exc_type.__name__, result))
        return None

    def summary(self):
        """Prints the last line: ``ALL PASSED`` or how many failed."""
        print(
            "FAILED: %d check(s) failed" % self.failed if self.failed else "ALL PASSED",
            flush=True,
        )
        return self.failed


def _description(e):
    return getattr(e, "description", None) or (e.args[0] if e.args else "")


def react(run, usage):
    """Runs ``run(reactor, *ARGS)`` (a Deferred firing with the number of
    failed checks) with the command line's arguments, which ``usage``
    names after the script's name, under TIMEOUT; exits as said above."""
    wanted = len(usage.split()) - 1
    if len(sys.argv) - 1 != wanted:
        sys.exit("usage: " + usage)

    def main(reactor, *args):
        d = run(reactor, *args)
        d.addTimeout(TIMEOUT, reactor)

        def done(failed):
            if failed:
                raise SystemExit(1)

        def broke(failure):
            if failure.check(SystemExit):
                return failure
            print("ERROR the run broke: %s" % failure.getTraceback(), flush=True)
            raise SystemExit(2)

        return d.addCallback(done).addErrback(broke)

    task.react(main, sys.argv[1:])
