#!/usr/bin/env python3
"""slixmpp (with its xep_0198 plugin) against Comity as a phone would use XEP-0357: enable stream management with
resumption, register an app server and node for push (an <enable xmlns='urn:xmpp:push:0'/> IQ: slixmpp 1.8.3 has no
xep_0357 plugin, so the client builds it), then lose the TCP connection, and later resume.

Prints one JSON object per line: push_enabled (the IQ's type), cut, resumed, message (each body), done. Reads "cut",
"go" and "bye" on stdin so the test decides when. Bounded by --timeout.
"""
import argparse
import asyncio
import json
import logging
import os
import signal
import ssl
import sys
import xml.etree.ElementTree as ET


def emit(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


async def run(args):
    import slixmpp

    xmpp = slixmpp.ClientXMPP(args.jid, args.password,
                              plugin_config={"feature_mechanisms": {"unencrypted_plain": False}})
    # The test server's certificate is self-signed.
    xmpp.ssl_context.check_hostname = False
    xmpp.ssl_context.verify_mode = ssl.CERT_NONE
    # slixmpp 1.8.3 only knows tls-unique, which Comity does not offer: log in without channel binding.
    mechs = xmpp["feature_mechanisms"]
    default_credentials = mechs.sasl_callback

    def credentials_without_cb(required, optional):
        creds = default_credentials(required, optional)
        creds.pop("channel_binding", None)
        return creds
    mechs.sasl_callback = credentials_without_cb
    xmpp.register_plugin("xep_0198")

    events = asyncio.Queue()
    for name in ("session_start", "session_resumed", "disconnected", "sm_failed", "failed_all_auth", "stream_error"):
        xmpp.add_event_handler(name, lambda ev, name=name: events.put_nowait((name, ev)))
    xmpp.add_event_handler("message", lambda msg: emit("message", body=msg["body"]))
    seen = {}

    async def wait_for(wanted):
        if wanted in seen:
            return seen.pop(wanted)
        while True:
            name, ev = await events.get()
            if name == wanted:
                return ev
            seen[name] = ev
            if name in ("sm_failed", "failed_all_auth", "stream_error"):
                emit(name, detail=str(ev))
                raise SystemExit(2)

    async def command(expected):
        line = (await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)).strip()
        if line != expected:
            emit("error", reason="expected %s, got %r" % (expected, line))
            raise SystemExit(2)

    xmpp.connect((args.host, args.port), force_starttls=True)
    await wait_for("session_start")
    iq = xmpp.Iq(stype="set")
    enable = ET.Element("{urn:xmpp:push:0}enable", {"jid": args.app_server, "node": args.node})
    form = ET.SubElement(enable, "{jabber:x:data}x", {"type": "submit"})
    for var, value in (("FORM_TYPE", "http://jabber.org/protocol/pubsub#publish-options"), ("pubsub#publish_model", "open")):
        ET.SubElement(ET.SubElement(form, "{jabber:x:data}field", {"var": var}), "{jabber:x:data}value").text = value
    iq.append(enable)
    result = await iq.send(timeout=15)
    xmpp.send_presence()
    emit("push_enabled", type=result["type"])

    await command("cut")
    # The network goes away under the client: no closing stream, the TCP connection is just gone.
    xmpp.transport.abort()
    await wait_for("disconnected")
    emit("cut")

    await command("go")
    xmpp.connect((args.host, args.port), force_starttls=True)
    await wait_for("session_resumed")
    emit("resumed")

    await command("bye")
    xmpp["xep_0198"].send_ack()
    await xmpp.disconnect(wait=2.0)
    emit("done")
    return 0


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--app-server", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR, stream=sys.stderr)

    def hard_stop(_signum, _frame):
        emit("timeout", hard=True)
        os._exit(3)
    signal.signal(signal.SIGALRM, hard_stop)
    signal.alarm(int(args.timeout) + 5)

    async def bounded():
        try:
            return await asyncio.wait_for(run(args), timeout=args.timeout)
        except asyncio.TimeoutError:
            emit("timeout", seconds=args.timeout)
            return 3
    return asyncio.run(bounded())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
