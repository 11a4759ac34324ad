#!/usr/bin/env python3
"""slixmpp (its xep_0352 plugin) against Comity: find the csi stream feature, go inactive, then active again.

Prints one JSON object per line: ready (with whether the plugin saw the feature), inactive, active, presence (from,
show) and message (from, body) as they arrive, done. Reads "inactive", "active" and "quit" on stdin, so the test
decides when. Bounded by --timeout.
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
    # slixmpp 1.8.3 only knows tls-unique, which Comity does not offer: log in without channel binding.
    mechs = xmpp["feature_mechanisms"]
    default_credentials = mechs.sasl_callback

    def credentials_without_cb(required, optional):
        creds = default_credentials(required, optional)
        creds.pop("channel_binding", None)
        return creds
    mechs.sasl_callback = credentials_without_cb
    xmpp.register_plugin("xep_0352")

    started = asyncio.Event()
    xmpp.add_event_handler("session_start", lambda _ev: started.set())
    xmpp.add_event_handler("presence", lambda p: emit("presence", **{"from": str(p["from"]), "show": p["show"], "type": p["type"]}))
    xmpp.add_event_handler("message", lambda m: emit("message", **{"from": str(m["from"]), "body": m["body"]}))

    xmpp.connect((args.host, args.port), force_starttls=True)
    await started.wait()
    xmpp.send_presence()
    await xmpp.get_roster()
    emit("ready", csi=bool(xmpp["xep_0352"].enabled))

    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if line == "inactive":
            xmpp["xep_0352"].send_inactive()
            emit("inactive")
        elif line == "active":
            xmpp["xep_0352"].send_active()
            emit("active")
        else:
            break
    await xmpp.disconnect(wait=2.0)
    emit("done")
    return 0


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
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
