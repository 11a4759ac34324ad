#!/usr/bin/env python3
"""slixmpp (its xep_0198 plugin) against Comity: enable stream management, lose the TCP connection, resume.

Prints one JSON object per line: enabled (with the SM id), message (each body received), cut, resumed, done.
Reads "go" on stdin before reconnecting, so the test can send while the client is away. Bounded by --timeout.
"""
import argparse
import asyncio
import json
import logging
import os
import signal
import ssl
import sys


def emit(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


async def run(args):
    import slixmpp

    xmpp = slixmpp.ClientXMPP(args.jid, args.password,
                              plugin_config={"feature_mechanisms": {"unencrypted_plain": False}})
    # The test server's certificate is self-signed.
    xmpp.ssl_context.check_hostname = False
    xmpp.ssl_context.verify_mode = ssl.CERT_NONE
    # slixmpp 1.8.3 only knows tls-unique, which Comity does not offer: log in as a client without channel binding.
    mechs = xmpp["feature_mechanisms"]
    default_credentials = mechs.sasl_callback

    def credentials_without_cb(required, optional):
        creds = default_credentials(required, optional)
        creds.pop("channel_binding", None)
        return creds
    mechs.sasl_callback = credentials_without_cb
    xmpp.register_plugin("xep_0198")

    events = asyncio.Queue()

    def forward(name):
        xmpp.add_event_handler(name, lambda ev: events.put_nowait((name, ev)))
    for name in ("session_start", "sm_enabled", "session_resumed", "sm_failed", "disconnected",
                 "failed_all_auth", "stream_error"):
        forward(name)
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

    xmpp.connect((args.host, args.port), force_starttls=True)
    enabled = await wait_for("sm_enabled")
    emit("enabled", id=enabled["id"], resume=str(enabled["resume"]), max=str(enabled["max"]))
    await wait_for("session_start")
    emit("session_start", jid=str(xmpp.boundjid))

    await asyncio.sleep(0)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if line.strip() != "cut":
        emit("error", reason="expected cut, got %r" % line)
        return 2
    # The network goes away under the client: no closing stream, the TCP connection is just gone.
    xmpp.transport.abort()
    await wait_for("disconnected")
    emit("cut", sm_id=xmpp["xep_0198"].sm_id)

    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if line.strip() != "go":
        emit("error", reason="expected go, got %r" % line)
        return 2
    xmpp.connect((args.host, args.port), force_starttls=True)
    await wait_for("session_resumed")
    emit("resumed", handled=xmpp["xep_0198"].handled)

    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
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
    p.add_argument("--timeout", type=float, default=20)
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
