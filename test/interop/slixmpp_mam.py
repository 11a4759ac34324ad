# slixmpp client for the XEP-0313 interop test (test/im/mam.test.ts). Run with Debian's /usr/bin/python3.
"""Usage: slixmpp_mam.py PORT JID PASSWORD PEER_JID PEER_PASSWORD

Logs in as JID, sends seven chat messages "m0".."m6" to PEER_JID (offline: they are archived on both sides), then
pages through its own archive with slixmpp's xep_0313 plugin (RSM max 3), once unfiltered and once filtered on
PEER_JID. Prints one JSON line: {"bodies": [...], "pages": n, "with_ben": [...]}.
"""

import asyncio
import json
import ssl
import sys


async def main(argv):
    port, jid, password, peer = int(argv[0]), argv[1], argv[2], argv[3]
    import slixmpp

    xmpp = slixmpp.ClientXMPP(jid, password)
    xmpp.ssl_context.check_hostname = False
    xmpp.ssl_context.verify_mode = ssl.CERT_NONE
    xmpp.register_plugin("xep_0030")
    xmpp.register_plugin("xep_0059")
    xmpp.register_plugin("xep_0313")
    loop = asyncio.get_running_loop()
    started = loop.create_future()
    xmpp.add_event_handler("session_start", lambda _e: started.done() or started.set_result(True))
    xmpp.add_event_handler("failed_all_auth", lambda _e: started.done() or started.set_exception(RuntimeError("auth failed")))
    queries = 0

    def count_out(stanza):
        nonlocal queries
        if stanza.name == "iq" and stanza.xml.find("{urn:xmpp:mam:2}query") is not None:
            queries += 1
        return stanza

    xmpp.add_filter("out", count_out)
    xmpp.connect(("127.0.0.1", port), force_starttls=True)
    await asyncio.wait_for(started, 40)  # generous: TLS and SCRAM on a loaded two-core machine
    xmpp.send_presence()

    info = await xmpp["xep_0030"].get_info(jid=slixmpp.JID(jid).bare)
    if "urn:xmpp:mam:2" not in info["disco_info"]["features"]:
        raise RuntimeError("no urn:xmpp:mam:2 feature on the account")

    for i in range(7):
        xmpp.send_message(mto=peer, mbody=f"m{i}", mtype="chat")
    await xmpp["xep_0030"].get_info(jid=slixmpp.JID(jid).domain)  # a round trip: the messages went through

    bodies = []
    async for msg in xmpp["xep_0313"].iterate(rsm={"max": 3}):
        bodies.append(msg["mam_result"]["forwarded"]["stanza"]["body"])
    pages = queries
    with_peer = []
    async for msg in xmpp["xep_0313"].iterate(with_jid=slixmpp.JID(peer), rsm={"max": 3}):
        with_peer.append(msg["mam_result"]["forwarded"]["stanza"]["body"])
    xmpp.disconnect()
    print(json.dumps({"bodies": bodies, "pages": pages, "with_ben": with_peer}), flush=True)


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1:]), 90))
