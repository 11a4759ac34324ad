# slixmpp instant-messaging client for the RFC 6121 interop tests: subscriptions, presence, chat, offline delivery.
"""One role per process; one JSON line per event on stdout. Run with Debian's /usr/bin/python3.

requester: subscribes to --contact, waits until the roster says 'both' and the contact is available,
           sends "hello <contact>", waits for a reply.
responder: approves and subscribes back automatically (slixmpp's auto_authorize/auto_subscribe),
           answers the first chat message with "hi back", then stays until --timeout or the peer leaves.
reader:    sends initial presence and prints the next --count messages with their XEP-0203 delay stamps.
carbons:   enables XEP-0280 carbons with slixmpp's plugin, prints "ready", then prints the next --count
           carbon copies (received or sent) with the forwarded message's from, to and body.
"""

import argparse
import asyncio
import json
import ssl
import sys


def emit(event, **fields):
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


async def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--role", choices=["requester", "responder", "reader", "carbons"], required=True)
    p.add_argument("--contact")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args(argv)

    import slixmpp

    xmpp = slixmpp.ClientXMPP(args.jid, args.password)
    xmpp.ssl_context.check_hostname = False
    xmpp.ssl_context.verify_mode = ssl.CERT_NONE
    xmpp.register_plugin("xep_0203")  # delayed delivery
    if args.role == "carbons":
        xmpp.register_plugin("xep_0280")
    xmpp.auto_authorize = args.role in ("responder", "requester")  # the requester approves the reciprocal request
    xmpp.auto_subscribe = args.role == "responder"
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    started = loop.create_future()
    messages = asyncio.Queue()
    available = asyncio.Event()

    xmpp.add_event_handler("session_start", lambda _e: started.done() or started.set_result(True))
    xmpp.add_event_handler("failed_all_auth", lambda _e: started.done() or started.set_exception(RuntimeError("auth failed")))
    xmpp.add_event_handler("message", lambda m: m["body"] and messages.put_nowait(m))
    copies = asyncio.Queue()
    for kind in ("received", "sent"):
        xmpp.add_event_handler("carbon_" + kind, lambda m, kind=kind: copies.put_nowait((kind, m["carbon_" + kind])))

    def on_available(pres):
        if args.contact and pres["from"].bare == args.contact:
            emit("contact_available", full=str(pres["from"]))
            available.set()

    xmpp.add_event_handler("got_online", on_available)
    xmpp.add_event_handler("presence_subscribe", lambda pr: emit("subscribe_received", frm=str(pr["from"])))
    xmpp.add_event_handler("presence_subscribed", lambda pr: emit("subscribed_received", frm=str(pr["from"])))

    xmpp.connect((args.host, args.port), force_starttls=True)
    await asyncio.wait_for(started, args.timeout)
    await xmpp.get_roster()
    xmpp.send_presence()
    emit("session_start", jid=str(xmpp.boundjid))

    async def requester():
        xmpp.send_presence(pto=args.contact, ptype="subscribe")
        for _ in range(int(args.timeout * 10)):
            item = xmpp.client_roster[args.contact]
            if item["subscription"] == "both" and available.is_set():
                break
            await asyncio.sleep(0.1)
        emit("roster", contact=args.contact, subscription=xmpp.client_roster[args.contact]["subscription"])
        xmpp.send_message(mto=args.contact, mbody="hello " + args.contact, mtype="chat")
        msg = await messages.get()
        emit("message", frm=str(msg["from"]), body=msg["body"])

    async def responder():
        msg = await messages.get()
        emit("message", frm=str(msg["from"]), body=msg["body"])
        xmpp.send_message(mto=msg["from"], mbody="hi back", mtype="chat")
        await asyncio.sleep(1)

    async def reader():
        for _ in range(args.count):
            msg = await messages.get()
            emit("message", frm=str(msg["from"]), body=msg["body"], delay=str(msg["delay"]["stamp"]) if msg["delay"]["stamp"] else None)

    async def carbons():
        await xmpp["xep_0280"].enable()
        emit("ready")
        for _ in range(args.count):
            kind, inner = await copies.get()
            emit("carbon", kind=kind, frm=str(inner["from"]), to=str(inner["to"]), body=inner["body"])

    try:
        await asyncio.wait_for({"requester": requester, "responder": responder, "reader": reader, "carbons": carbons}[args.role](), args.timeout)
        code = 0
    except asyncio.TimeoutError:
        emit("timeout")
        code = 2
    xmpp.disconnect()
    await asyncio.sleep(0.2)
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
