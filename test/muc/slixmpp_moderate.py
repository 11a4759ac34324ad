# slixmpp (xep_0045 + xep_0425 plugins) moderator for the XEP-0425 test (test/muc/moderation.test.ts). Debian's python3.
"""Usage: slixmpp_moderate.py PORT JID PASSWORD ROOM STANZA_ID

Joins ROOM as "Sam", moderates the message STANZA_ID with slixmpp's xep_0425 plugin (reason "Not here"), waits for
the room's retraction through the plugin's moderated_message event and prints one JSON line:
{"moderated_id": ..., "by": ..., "reason": ...}.
"""

import asyncio
import json
import ssl
import sys

# slixmpp 1.8.3's join_muc_wait prints delay elements to stdout: keep stdout for our JSON line only.
OUT = sys.stdout
sys.stdout = sys.stderr


async def main(argv):
    port, jid, password, room, stanza_id = int(argv[0]), argv[1], argv[2], argv[3], argv[4]
    import slixmpp

    xmpp = slixmpp.ClientXMPP(jid, password)
    xmpp.ssl_context.check_hostname = False
    xmpp.ssl_context.verify_mode = ssl.CERT_NONE
    xmpp.register_plugin("xep_0045")
    xmpp.register_plugin("xep_0425")
    loop = asyncio.get_running_loop()
    started = loop.create_future()
    moderated = loop.create_future()
    xmpp.add_event_handler("session_start", lambda _e: started.done() or started.set_result(True))
    xmpp.add_event_handler("failed_all_auth", lambda _e: started.done() or started.set_exception(RuntimeError("auth failed")))
    xmpp.add_event_handler("moderated_message", lambda m: moderated.done() or moderated.set_result(m))
    xmpp.connect(("127.0.0.1", port), force_starttls=True)
    await asyncio.wait_for(started, 40)  # generous: TLS and SCRAM on a loaded two-core machine
    xmpp.send_presence()
    await xmpp["xep_0045"].join_muc_wait(slixmpp.JID(room), "Sam", maxstanzas=0, timeout=40)
    await xmpp["xep_0425"].moderate(slixmpp.JID(room), stanza_id, "Not here", timeout=40)
    msg = await asyncio.wait_for(moderated, 40)
    m = msg["apply_to"]["moderated"]
    OUT.write(json.dumps({"moderated_id": msg["apply_to"]["id"], "by": str(m["by"]), "reason": m["reason"]}) + "\n")
    OUT.flush()
    xmpp.disconnect()
    await asyncio.sleep(0.2)


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1:]), 100))
