# aioxmpp clients for the PEP interop test (test/pep/aioxmpp.test.ts). Run with Debian's /usr/bin/python3.
"""Usage: aioxmpp_pep.py PORT A_JID B_JID C_JID PASSWORD

A and B are mutual contacts (the test writes their rosters); C is a stranger. In the manner of aioxmpp's own e2e tests
for pep, pubsub and avatar:

1. pep: B claims a PEP node with notify=True (aioxmpp then advertises +notify through its XEP-0115 caps); A publishes
   with PubSubClient to its own PEP; B's claim fires on_item_publish.
2. avatar: A publishes an avatar set with AvatarService (which first checks the account's pubsub/pep identity); B is
   told through on_metadata_changed and reads the metadata and the image bytes.
3. pubsub: A reads its node with get_items and get_items_by_id, retracts the item, and deletes the node; C is refused
   A's presence-access node.

Prints one JSON line with what each step saw.
"""

import asyncio
import hashlib
import json
import sys


async def main(argv):
    port, a_jid, b_jid, c_jid, password = int(argv[0]), argv[1], argv[2], argv[3], argv[4]
    import aioxmpp
    import aioxmpp.avatar
    import aioxmpp.connector
    import aioxmpp.pep
    import aioxmpp.pubsub
    import aioxmpp.xso as xso

    @aioxmpp.pubsub.xso.as_payload_class
    class Tune(xso.XSO):
        TAG = ("urn:example:tune", "tune")
        title = xso.Attr("title", default=None)

    def client(jid):
        return aioxmpp.PresenceManagedClient(
            aioxmpp.JID.fromstr(jid),
            aioxmpp.make_security_layer(password, no_verify=True),
            override_peer=[("127.0.0.1", port, aioxmpp.connector.STARTTLSConnector())],
        )

    a, b, c = client(a_jid), client(b_jid), client(c_jid)
    loop = asyncio.get_running_loop()
    tune_seen = loop.create_future()
    meta_seen = loop.create_future()

    b_pep = b.summon(aioxmpp.PEPClient)
    claim = b_pep.claim_pep_node("urn:example:tune", notify=True)

    def on_tune(jid, node, item, message=None):
        if jid.bare() == aioxmpp.JID.fromstr(a_jid) and not tune_seen.done():
            tune_seen.set_result(item.registered_payload.title if item.registered_payload is not None else None)

    claim.on_item_publish.connect(on_tune)
    b_avatar = b.summon(aioxmpp.avatar.AvatarService)

    def on_meta(jid, metadata):
        if jid.bare() == aioxmpp.JID.fromstr(a_jid) and metadata and not meta_seen.done():
            meta_seen.set_result(True)

    b_avatar.on_metadata_changed.connect(on_meta)
    a_pubsub = a.summon(aioxmpp.PubSubClient)
    a_avatar = a.summon(aioxmpp.avatar.AvatarService)
    a_avatar.synchronize_vcard = False
    c_pubsub = c.summon(aioxmpp.PubSubClient)
    out = {}

    async with b.connected(), c.connected(), a.connected():
        # Give the server the time to learn B's caps (one disco#info per ver) before A publishes.
        await asyncio.sleep(1.5)
        a_bare = aioxmpp.JID.fromstr(a_jid)

        # 1. pep: notification from +notify interest.
        tune = Tune()
        tune.title = "Song"
        await a_pubsub.publish(None, "urn:example:tune", tune, id_="t1")
        out["notified_title"] = await asyncio.wait_for(tune_seen, 15)

        # 2. avatar: publish, notification, metadata and bytes.
        data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
        avatar_set = aioxmpp.avatar.AvatarSet()
        avatar_set.add_avatar_image("image/png", image_bytes=data)
        await a_avatar.publish_avatar_set(avatar_set)
        out["avatar_notified"] = await asyncio.wait_for(meta_seen, 15)
        descriptors = await b_avatar.get_avatar_metadata(a_bare, require_fresh=True)
        png = [d for d in descriptors if d.mime_type == "image/png"]
        out["avatar_id_ok"] = bool(png) and png[0].normalized_id == hashlib.sha1(data).hexdigest()
        out["avatar_bytes_ok"] = bool(png) and (await png[0].get_image_bytes()) == data

        # 3. pubsub: retrieval, retraction, deletion, access.
        items = await a_pubsub.get_items(None, "urn:example:tune")
        out["items"] = [it.id_ for it in items.payload.items]
        by_id = await a_pubsub.get_items_by_id(None, "urn:example:tune", ["t1"])
        out["by_id"] = [it.id_ for it in by_id.payload.items]
        try:
            await c_pubsub.get_items(a_bare, "urn:example:tune")
            out["stranger"] = "allowed"
        except aioxmpp.errors.XMPPError as err:
            out["stranger"] = err.condition.value[1]
        await a_pubsub.retract(None, "urn:example:tune", "t1")
        items = await a_pubsub.get_items(None, "urn:example:tune")
        out["after_retract"] = [it.id_ for it in items.payload.items]
        await a_pubsub.delete(None, "urn:example:tune")
        try:
            await a_pubsub.get_items(None, "urn:example:tune")
            out["after_delete"] = "still there"
        except aioxmpp.errors.XMPPError as err:
            out["after_delete"] = err.condition.value[1]

    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
