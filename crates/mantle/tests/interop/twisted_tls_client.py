"""A real Twisted AMP client over TLS, for checking Mantle's AMP listener
with ``[live] tls = true``.

Usage: python twisted_tls_client.py HOST PORT CAFILE USER PASSWORD

Connects to HOST:PORT with Twisted's ``ssl.optionsForClientTLS``, trusting
only the certificate in CAFILE (a site's self-signed ``tls/cert.pem``) and
checking that it is for ``localhost``; logs in as USER and calls
``Whoami``. Then checks that the same certificate is refused for another
name, so the check above was real. Prints one line per check, ``PASS
name: detail`` or ``FAIL name: detail``, and exits 0 only if every check
passed (1 if one failed, 2 if the whole run broke).

Needs ``twisted[tls]`` (pyOpenSSL and service_identity).
"""

from cryptography.x509.oid import NameOID
from twisted.internet import defer, endpoints, ssl
from twisted.protocols import amp

from amp_checks import TIMEOUT, Checks, Login, Whoami, react


def endpoint(reactor, host, port, trust, name):
    options = ssl.optionsForClientTLS(name, trustRoot=trust)
    tcp = endpoints.TCP4ClientEndpoint(reactor, host, port, timeout=TIMEOUT)
    return endpoints.wrapClientTLS(options, tcp)


@defer.inlineCallbacks
def run(reactor, host, port, cafile, user, password):
    port = int(port)
    c = Checks()
    with open(cafile, "rb") as f:
        trust = ssl.Certificate.loadPEM(f.read())

    proto = yield endpoints.connectProtocol(
        endpoint(reactor, host, port, trust, "localhost"), amp.AMP()
    )
    c.ok("connect", "%s:%d" % (host, port))
    answer = yield proto.callRemote(Login, username=user, password=password)
    c.check("login", len(answer["token"]) >= 16, "token of %d characters" % len(answer["token"]))
    answer = yield proto.callRemote(Whoami)
    me = answer["username"]
    c.check("whoami", me == user or me.startswith(user + "@"), "username=%s" % me)
    peer = proto.transport.getPeerCertificate()
    subject = peer.to_cryptography().subject if peer is not None else None
    names = [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] if subject else []
    c.check(
        "tls-peer-certificate",
        names == ["localhost"],
        "CN %r over %s" % (names, proto.transport.getHandle().get_protocol_version_name()),
    )
    proto.transport.loseConnection()

    # The same certificate for a name it does not carry: refused.
    try:
        wrong = yield endpoints.connectProtocol(
            endpoint(reactor, host, port, trust, "wrong.example"), amp.AMP()
        )
        answer = yield wrong.callRemote(Whoami)
    except Exception as e:
        c.ok("wrong-name-refused", "%s: %s" % (type(e).__name__, e))
    else:
        c.fail("wrong-name-refused", "answered %r" % (answer,))

    return c.summary()


if __name__ == "__main__":
    react(run, "twisted_tls_client.py HOST PORT CAFILE USER PASSWORD")
