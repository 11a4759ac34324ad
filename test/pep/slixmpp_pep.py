# slixmpp clients for the PEP interop test (test/pep/slixmpp.test.ts). Run with Debian's /usr/bin/python3.
"""Usage: slixmpp_pep.py PORT A_JID B_JID C_JID PASSWORD

A and B are mutual contacts (the test writes their rosters); C is a stranger. All three log in with slixmpp's
xep_0115 (caps in presence, answering the server's disco#info) and xep_0163/xep_0084 (+notify for avatar metadata).

1. test_pep flavour: A stores a mood with xep_0222 (public) and xep_0223 (private, whitelist) and reads both back;
   B reads the public one and is refused the private one; A deletes both nodes.
2. test_user_avatar flavour: A publishes avatar data and metadata (xep_0084); B gets the metadata notification and
   fetches the data by id.
3. OMEMO shape: A publishes its device list and a bundle with publish-options access_model=open (max_items=max on the
   bundle), as OMEMO clients do; C, a stranger, reads both; a presence-access node of A stays closed to C.

Prints one JSON line with what each step saw.
"""

import asyncio
import base64
import hashlib
import json
import ssl
import sys
import xml.etree.ElementTree as ET


def make_client(slixmpp, jid, password):
    c = slixmpp.ClientXMPP(jid, password)
    c.ssl_context.check_hostname = False
    c.ssl_context.verify_mode = ssl.CERT_NONE
    for p in ["xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0084", "xep_0107", "xep_0222", "xep_0223"]:
        c.register_plugin(p)
    return c


async def start(c, port):
    loop = asyncio.get_running_loop()
    started = loop.create_future()
    c.add_event_handler("session_start", lambda _e: started.done() or started.set_result(True))
    c.add_event_handler("failed_all_auth", lambda _e: started.done() or started.set_exception(RuntimeError("auth failed")))
    c.connect(("127.0.0.1", port), force_starttls=True)
    await asyncio.wait_for(started, 40)  # generous: TLS and SCRAM on a loaded two-core machine
    c.send_presence()


def options(slixmpp_mod, fields):
    form = slixmpp_mod.plugins.xep_0004.stanza.Form()
    form["type"] = "submit"
    form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options")
    for k, v in fields.items():
        form.add_field(var=k, value=v)
    return form


async def condition_of(coro):
    try:
        await coro
        return None
    except Exception as err:  # slixmpp.exceptions.IqError
        iq = getattr(err, "iq", None)
        return iq["error"]["condition"] if iq is not None else repr(err)


async def main(argv):
    port, a_jid, b_jid, c_jid, password = int(argv[0]), argv[1], argv[2], argv[3], argv[4]
    import slixmpp
    from slixmpp.plugins.xep_0107.stanza import UserMood

    a, b, c = (make_client(slixmpp, j, password) for j in (a_jid, b_jid, c_jid))
    loop = asyncio.get_running_loop()
    metadata_seen = loop.create_future()

    def on_metadata(msg):
        if msg["from"].bare == a_jid and not metadata_seen.done():
            metadata_seen.set_result(msg["pubsub_event"]["items"]["item"]["id"])

    b.add_event_handler("avatar_metadata_publish", on_metadata)
    await start(b, port)
    await start(c, port)
    await start(a, port)
    # Let the server learn B's caps (it asks B's disco#info once for the ver) before A publishes.
    await asyncio.sleep(1.5)
    out = {}

    # 1. XEP-0222 / XEP-0223 (slixmpp's itests/test_pep.py, both flavours).
    mood = UserMood()
    mood["value"] = "happy"
    mood["text"] = "Happy boi"
    await a["xep_0222"].store(mood, node="tmp:xmpp:mood", id="toto")
    got = await a["xep_0222"].retrieve("tmp:xmpp:mood")
    out["public_own"] = got["pubsub"]["items"]["item"]["payload"].find("{http://jabber.org/protocol/mood}text").text
    got = await b["xep_0060"].get_items(slixmpp.JID(a_jid), "tmp:xmpp:mood")
    out["public_contact"] = got["pubsub"]["items"]["item"]["id"]
    await a["xep_0223"].store(mood, node="tmp:xmpp:private", id="secret")
    got = await a["xep_0223"].retrieve("tmp:xmpp:private")
    out["private_own"] = got["pubsub"]["items"]["item"]["id"]
    out["private_contact"] = await condition_of(b["xep_0060"].get_items(slixmpp.JID(a_jid), "tmp:xmpp:private"))
    await a["xep_0060"].delete_node(slixmpp.JID(a_jid), "tmp:xmpp:mood")
    await a["xep_0060"].delete_node(slixmpp.JID(a_jid), "tmp:xmpp:private")
    out["after_delete"] = await condition_of(a["xep_0222"].retrieve("tmp:xmpp:mood"))

    # 2. XEP-0084 (slixmpp's itests/test_user_avatar.py): data, then metadata; B is notified and fetches the data.
    data = bytes(range(256)) * 40  # 10 KiB of "image"
    avatar_id = hashlib.sha1(data).hexdigest()
    await a["xep_0084"].publish_avatar(data)
    await a["xep_0084"].publish_avatar_metadata(items=[{"id": avatar_id, "type": "image/png", "bytes": len(data)}])
    out["metadata_event"] = await asyncio.wait_for(metadata_seen, 15)
    got = await b["xep_0084"].retrieve_avatar(slixmpp.JID(a_jid), avatar_id)
    out["avatar_ok"] = got["pubsub"]["items"]["item"]["avatar_data"]["value"] == data
    got = await a["xep_0084"].retrieve_avatar(slixmpp.JID(a_jid), avatar_id)
    out["avatar_own_ok"] = got["pubsub"]["items"]["item"]["avatar_data"]["value"] == data

    # 3. OMEMO-shaped publishes (what OMEMO clients send), read by a stranger.
    ns = "eu.siacs.conversations.axolotl"
    device_list = ET.fromstring(f"<list xmlns='{ns}'><device id='1234'/><device id='5678'/></list>")
    await a["xep_0060"].publish(None, f"{ns}.devicelist", id="current", payload=device_list,
                                options=options(slixmpp, {"pubsub#access_model": "open"}))
    key = base64.b64encode(b"k" * 33).decode()
    bundle = ET.fromstring(
        f"<bundle xmlns='{ns}'><signedPreKeyPublic signedPreKeyId='1'>{key}</signedPreKeyPublic>"
        f"<signedPreKeySignature>{key}</signedPreKeySignature><identityKey>{key}</identityKey>"
        f"<prekeys><preKeyPublic preKeyId='1'>{key}</preKeyPublic></prekeys></bundle>"
    )
    await a["xep_0060"].publish(None, f"{ns}.bundles:1234", id="current", payload=bundle,
                                options=options(slixmpp, {"pubsub#access_model": "open", "pubsub#max_items": "max"}))
    got = await c["xep_0060"].get_items(slixmpp.JID(a_jid), f"{ns}.devicelist", max_items=1)
    out["devices"] = [d.get("id") for d in got["pubsub"]["items"]["item"]["payload"]]
    got = await c["xep_0060"].get_item(slixmpp.JID(a_jid), f"{ns}.bundles:1234", "current")
    out["bundle_ok"] = got["pubsub"]["items"]["item"]["payload"].find(f"{{{ns}}}identityKey").text == key
    out["avatar_stranger"] = await condition_of(c["xep_0084"].retrieve_avatar(slixmpp.JID(a_jid), avatar_id))

    for cl in (a, b, c):
        cl.disconnect()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
