# slixmpp interop client: logs in (RFC 6120 §5 STARTTLS / XEP-0368 direct TLS, §6 SASL, §7 bind) and runs XEP-0199, XEP-0030, XEP-0092 and message actions, one JSON line per result.
"""Drive a real slixmpp client against a Comity server for the interop tests.

Every result is printed to stdout as one JSON object per line ("event" names it).
Exit codes: 0 all actions succeeded, 1 authentication failed, 2 timed out,
3 connection failed or an action failed.
Run with Debian's /usr/bin/python3 (python3-slixmpp 1.8.3).
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import ssl
import sys

EXIT_OK = 0
EXIT_AUTH = 1
EXIT_TIMEOUT = 2
EXIT_ERROR = 3


def emit(event, **fields):
    """Print one JSON result line and flush it so the test sees it at once."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def parse_args(argv):
    """Command-line options: where to connect, who to be, what to do."""
    p = argparse.ArgumentParser(description="slixmpp interop client for Comity tests")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--jid", required=True, help="user@domain/resource")
    p.add_argument("--password", required=True)
    p.add_argument("--mechanism", action="append", default=[],
                   help="SASL mechanism slixmpp may use (repeatable); default: slixmpp's own choice")
    p.add_argument("--direct-tls", action="store_true", help="XEP-0368 direct TLS instead of STARTTLS")
    p.add_argument("--no-channel-binding", action="store_true",
                   help="hide the TLS channel binding from SCRAM, so slixmpp acts as a client without "
                        "channel-binding support (gs2 flag 'n' instead of 'y')")
    p.add_argument("--ping", action="store_true", help="XEP-0199 ping the server")
    p.add_argument("--disco", action="store_true", help="XEP-0030 disco#info on the server")
    p.add_argument("--version", action="store_true", help="XEP-0092 software version of the server")
    p.add_argument("--presence", action="store_true", help="send initial presence after session start")
    p.add_argument("--send", nargs=2, action="append", default=[], metavar=("TO", "BODY"),
                   help="send a chat message (repeatable)")
    p.add_argument("--wait-message", type=int, default=0, metavar="N",
                   help="wait for N messages with a body (implies --presence)")
    p.add_argument("--timeout", type=float, default=20.0, help="overall limit in seconds")
    p.add_argument("--debug", action="store_true", help="slixmpp debug log (XML) on stderr")
    return p.parse_args(argv)


def tls_info(xmpp):
    """TLS version of the current connection, or None."""
    sock = xmpp.socket
    if isinstance(sock, (ssl.SSLSocket, ssl.SSLObject)):
        return sock.version()
    return None


def current_mech(xmpp):
    """Name and GS2 header (SCRAM channel-binding flag) of the SASL mechanism in use."""
    mech = xmpp["feature_mechanisms"].mech
    if mech is None:
        return {}
    out = {"mechanism": mech.name}
    gs2 = getattr(mech, "gs2_header", None)
    if gs2 is not None:
        out["gs2_header"] = gs2.decode("utf-8", "replace")
    return out


async def run(args):
    """Connect, authenticate, run the requested actions, disconnect; returns the exit code."""
    import slixmpp
    from slixmpp.exceptions import IqError, IqTimeout

    plugin_config = {"feature_mechanisms": {"unencrypted_plain": False}}
    if args.mechanism:
        # use_mechs limits slixmpp's choice to these names (features/feature_mechanisms/mechanisms.py).
        plugin_config["feature_mechanisms"]["use_mechs"] = list(args.mechanism)
    xmpp = slixmpp.ClientXMPP(args.jid, args.password, plugin_config=plugin_config)
    # The test server's certificate is self-signed and generated at start.
    xmpp.ssl_context.check_hostname = False
    xmpp.ssl_context.verify_mode = ssl.CERT_NONE
    if args.no_channel_binding:
        mechs = xmpp["feature_mechanisms"]
        default_credentials = mechs.sasl_callback

        def credentials_without_cb(required, optional):
            creds = default_credentials(required, optional)
            creds.pop("channel_binding", None)  # sasl.choose() fills it with b'', read as "no binding"
            return creds
        mechs.sasl_callback = credentials_without_cb
    for plugin in ("xep_0030", "xep_0092", "xep_0199"):
        xmpp.register_plugin(plugin)

    loop = asyncio.get_running_loop()
    session = loop.create_future()
    messages = asyncio.Queue()

    def settle(value=None, error=None):
        if session.done():
            return
        if error is not None:
            session.set_exception(error)
        else:
            session.set_result(value)

    class AuthFailed(Exception):
        pass

    class ConnectFailed(Exception):
        pass

    def on_failed_auth(stanza):
        # One mechanism was refused; slixmpp then tries the next allowed one, if any.
        emit("sasl_failure", condition=stanza["condition"], text=stanza["text"], **current_mech(xmpp))

    def on_failed_all_auth(_event):
        settle(error=AuthFailed("no mechanism left"))

    def on_no_auth(_event):
        offered = sorted(xmpp["feature_mechanisms"].mech_list)
        emit("no_mechanism", offered=offered, allowed=args.mechanism)
        settle(error=AuthFailed("no acceptable mechanism offered"))

    def on_auth_success(_stanza):
        emit("auth_success", tls=tls_info(xmpp),
             offered=sorted(xmpp["feature_mechanisms"].mech_list), **current_mech(xmpp))

    def on_session_start(_event):
        settle(str(xmpp.boundjid))

    def on_connection_failed(err):
        settle(error=ConnectFailed(str(err)))

    def on_disconnected(reason):
        settle(error=ConnectFailed("disconnected before session start: %s" % (reason,)))

    def on_stream_error(err):
        emit("stream_error", condition=err["condition"], text=err["text"])

    def on_message(msg):
        if msg["body"]:
            messages.put_nowait(msg)

    xmpp.add_event_handler("failed_auth", on_failed_auth)
    xmpp.add_event_handler("failed_all_auth", on_failed_all_auth)
    xmpp.add_event_handler("no_auth", on_no_auth)
    xmpp.add_event_handler("auth_success", on_auth_success)
    xmpp.add_event_handler("session_start", on_session_start)
    xmpp.add_event_handler("connection_failed", on_connection_failed)
    xmpp.add_event_handler("disconnected", on_disconnected)
    xmpp.add_event_handler("stream_error", on_stream_error)
    xmpp.add_event_handler("message", on_message)

    xmpp.connect((args.host, args.port), use_ssl=args.direct_tls, force_starttls=not args.direct_tls)
    try:
        bound = await session
    except AuthFailed as e:
        emit("auth_failed", reason=str(e), attempted=sorted(xmpp["feature_mechanisms"].attempted_mechs)
             or ([xmpp["feature_mechanisms"].mech.name] if xmpp["feature_mechanisms"].mech else []))
        xmpp.abort()
        return EXIT_AUTH
    except ConnectFailed as e:
        emit("connection_failed", reason=str(e))
        xmpp.abort()
        return EXIT_ERROR
    xmpp.del_event_handler("disconnected", on_disconnected)
    emit("session_start", jid=bound, tls=tls_info(xmpp), **current_mech(xmpp))

    code = EXIT_OK
    server = xmpp.boundjid.domain
    if args.presence or args.wait_message:
        xmpp.send_presence()
        # The server handles one stream's stanzas in order: once a ping sent after the presence is answered,
        # the presence has been processed and messages to the bare JID will reach this resource.
        try:
            await xmpp["xep_0199"].send_ping(server, timeout=args.timeout)
        except IqError:
            pass
        emit("presence_sent")

    if args.ping:
        # send_ping, not ping(): ping() swallows error replies from one's own server.
        try:
            await xmpp["xep_0199"].send_ping(server, timeout=args.timeout)
            emit("ping", ok=True, to=server)
        except IqError as e:
            emit("ping", ok=False, to=server, condition=e.iq["error"]["condition"])
            code = EXIT_ERROR

    if args.disco:
        try:
            iq = await xmpp["xep_0030"].get_info(jid=server, timeout=args.timeout)
            info = iq["disco_info"]
            identities = [{"category": c, "type": t, "lang": l, "name": n}
                          for (c, t, l, n) in info.get_identities(dedupe=False)]
            emit("disco_info", ok=True, to=server, identities=identities,
                 features=sorted(info.get_features(dedupe=True)))
        except IqError as e:
            emit("disco_info", ok=False, to=server, condition=e.iq["error"]["condition"])
            code = EXIT_ERROR

    if args.version:
        try:
            iq = await xmpp["xep_0092"].get_version(server, timeout=args.timeout)
            v = iq["software_version"]
            emit("version", ok=True, to=server, name=v["name"], version=v["version"], os=v["os"])
        except IqError as e:
            emit("version", ok=False, to=server, condition=e.iq["error"]["condition"])
            code = EXIT_ERROR

    for to, body in args.send:
        xmpp.send_message(mto=to, mbody=body, mtype="chat")
        emit("message_sent", to=to, body=body)

    for _ in range(args.wait_message):
        msg = await messages.get()
        emit("message", **{"from": str(msg["from"]), "to": str(msg["to"]),
                           "type": msg["type"], "body": msg["body"]})

    # A clean stream close lets the server deliver what we sent before the socket goes.
    await xmpp.disconnect(wait=2.0)
    emit("disconnected")
    return code


def main(argv):
    """Run the client within the timeout, whatever happens."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR, stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")

    # Backstop in case the event loop itself is stuck: the process always ends.
    def hard_stop(_signum, _frame):
        emit("timeout", hard=True)
        os._exit(EXIT_TIMEOUT)
    signal.signal(signal.SIGALRM, hard_stop)
    signal.alarm(int(args.timeout) + 5)

    try:
        import slixmpp  # noqa: F401
    except ImportError as e:
        emit("error", reason="slixmpp is not importable: %s (install python3-slixmpp)" % e)
        return EXIT_ERROR

    async def bounded():
        try:
            return await asyncio.wait_for(run(args), timeout=args.timeout)
        except asyncio.TimeoutError:
            emit("timeout", seconds=args.timeout)
            return EXIT_TIMEOUT

    try:
        return asyncio.run(bounded())
    except Exception as e:  # report, never hang or dump a bare traceback to the test
        emit("error", reason="%s: %s" % (type(e).__name__, e))
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
