# slixmpp (xep_0045 plugin) roles for the XEP-0045 interop test; one JSON line per event on stdout.
"""Run with Debian's /usr/bin/python3. Roles:

owner:  joins --room as --nick with the plugin's join_muc_wait (creating it), accepts the default configuration with
        an empty submitted form (instant room), sets the subject, sends --count groupchat messages "history N", prints
        "ready", then waits for a groupchat message from someone else and answers "welcome <nick>".
member: joins --room as --nick asking for at most --count history messages (<history maxstanzas/>), prints the
        occupants, history and subject join_muc_wait returned, sends "hello from <nick>", prints the next groupchat
        message from someone else, pages through the room's archive with slixmpp's xep_0313 plugin (RSM max 2,
        XEP-0313 queries to the room's JID) and prints the bodies and ids with the stanza id of that live message,
        then leaves the room.
"""

import argparse
import asyncio
import json
import ssl
import sys

# slixmpp 1.8.3's join_muc_wait prints delay elements to stdout: keep stdout for our JSON lines only.
OUT = sys.stdout
sys.stdout = sys.stderr


def emit(event, **fields):
    OUT.write(json.dumps({"event": event, **fields}) + "\n")
    OUT.flush()


async def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--role", choices=["owner", "member"], required=True)
    p.add_argument("--room", required=True)
    p.add_argument("--nick", required=True)
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args(argv)

    import slixmpp
    from slixmpp.plugins.xep_0045.stanza import MUCOwnerQuery

    xmpp = slixmpp.ClientXMPP(args.jid, args.password)
    xmpp.ssl_context.check_hostname = False
    xmpp.ssl_context.verify_mode = ssl.CERT_NONE
    xmpp.register_plugin("xep_0045")
    xmpp.register_plugin("xep_0059")
    xmpp.register_plugin("xep_0313")
    loop = asyncio.get_running_loop()
    started = loop.create_future()
    live = asyncio.Queue()
    xmpp.add_event_handler("session_start", lambda _e: started.done() or started.set_result(True))
    xmpp.add_event_handler("failed_all_auth", lambda _e: started.done() or started.set_exception(RuntimeError("auth failed")))

    def on_groupchat(msg):
        if msg["body"] and msg["mucnick"] != args.nick and not msg.get_plugin("delay", check=True):
            live.put_nowait(msg)

    xmpp.add_event_handler("groupchat_message", on_groupchat)
    xmpp.connect((args.host, args.port), force_starttls=True)
    await asyncio.wait_for(started, args.timeout)
    xmpp.send_presence()
    muc = xmpp.plugin["xep_0045"]

    async def owner():
        pres, _subject, _occupants, _history = await muc.join_muc_wait(args.room, args.nick, maxstanzas=0, timeout=args.timeout)
        emit("joined", codes=sorted(pres["muc"]["status_codes"]), role=pres["muc"]["role"], affiliation=pres["muc"]["affiliation"])
        query = MUCOwnerQuery()
        form = xmpp.plugin["xep_0004"].make_form(ftype="submit")
        query.append(form)
        await xmpp.make_iq_set(query, ito=args.room).send(timeout=args.timeout)
        emit("configured")
        muc.set_subject(args.room, "Interop")
        for i in range(1, args.count + 1):
            xmpp.send_message(mto=args.room, mbody=f"history {i}", mtype="groupchat")
        # Our own last message coming back means everything before it was stored in the room's history.
        while True:
            msg = await wait_own(xmpp, args)
            if msg == f"history {args.count}":
                break
        emit("ready")
        msg = await live.get()
        emit("message", frm=str(msg["from"]), body=msg["body"])
        xmpp.send_message(mto=args.room, mbody="welcome " + msg["mucnick"], mtype="groupchat")
        await asyncio.sleep(0.5)

    async def member():
        pres, subject, occupants, history = await muc.join_muc_wait(args.room, args.nick, maxstanzas=args.count, timeout=args.timeout)
        emit("joined", codes=sorted(pres["muc"]["status_codes"]), role=pres["muc"]["role"], affiliation=pres["muc"]["affiliation"])
        emit("occupants", nicks=sorted(o["from"].resource for o in occupants))
        emit("history", bodies=[m["body"] for m in history], stamps=[str(m["delay"]["stamp"]) for m in history], froms=[str(m["from"]) for m in history])
        emit("subject", subject=subject["subject"], frm=str(subject["from"]))
        xmpp.send_message(mto=args.room, mbody="hello from " + args.nick, mtype="groupchat")
        msg = await live.get()
        emit("message", frm=str(msg["from"]), body=msg["body"])
        stanza_id = msg.xml.find("{urn:xmpp:sid:0}stanza-id")
        live_id = None if stanza_id is None else {"id": stanza_id.get("id"), "by": stanza_id.get("by")}
        bodies, ids, froms = [], [], []
        async for res in xmpp["xep_0313"].iterate(jid=slixmpp.JID(args.room), rsm={"max": 2}):
            fwd = res["mam_result"]["forwarded"]["stanza"]
            bodies.append(fwd["body"])
            froms.append(str(fwd["from"]))
            ids.append(res["mam_result"]["id"])
        emit("archive", bodies=bodies, ids=ids, froms=froms, live_id=live_id)
        muc.leave_muc(args.room, args.nick)
        await asyncio.sleep(0.3)

    own = asyncio.Queue()
    xmpp.add_event_handler("groupchat_message", lambda m: m["mucnick"] == args.nick and m["body"] and own.put_nowait(m["body"]))

    async def wait_own(_xmpp, _args):
        return await own.get()

    try:
        await asyncio.wait_for({"owner": owner, "member": member}[args.role](), args.timeout)
        code = 0
    except asyncio.TimeoutError:
        emit("timeout")
        code = 2
    except Exception as err:  # the test prints what went wrong
        emit("error", what=repr(err))
        code = 3
    xmpp.disconnect()
    await asyncio.sleep(0.2)
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
