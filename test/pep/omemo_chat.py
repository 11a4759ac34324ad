# An OMEMO conversation between two slixmpp accounts, for test/pep/omemo.test.ts. Run with Debian's /usr/bin/python3.
"""Usage: omemo_chat.py A_JID A_PASSWORD A_HOST A_PORT B_JID B_PASSWORD B_HOST B_PORT [--subscribe]

A and B are mutual contacts. Each is a slixmpp client glued to python3-omemo with the python3-oldmemo backend (OMEMO
0.3, eu.siacs.conversations.axolotl, what deployed clients speak): the library's storage is kept in memory, and its
XMPP side is PEP on the account:

- own device list: get_items on <own bare JID> node eu.siacs.conversations.axolotl.devicelist, published back with
  publish-options access_model=open;
- own bundle: published on eu.siacs.conversations.axolotl.bundles:<device id> (access_model=open);
- the contact's device list arrives only as a PEP notification (+notify in XEP-0115 caps): the sender never downloads
  it, so without the server's notification there is no device to encrypt for (NoEligibleDevices);
- the contact's bundle: get_items on the contact's bare JID, node bundles:<id>, max_items=1;
- messages: <message type='chat'> with <encrypted xmlns='eu.siacs.conversations.axolotl'>, a fallback body and a
  store hint.

Trust: each side trusts the other's device only when the identity key fetched through the server equals the key the
other side reports about itself (the out-of-band fingerprint comparison a person would make); otherwise it distrusts
it and encryption fails.

With --subscribe (accounts on servers that keep state between runs, e.g. a federated peer): each account first deletes
its own OMEMO nodes (a device list and bundles left by an earlier run) and drops the other from its roster; after both
are online A subscribes to B and both wait until the subscription is mutual (slixmpp approves and subscribes back);
at the end B drops A and deletes its OMEMO nodes again.
Without it the accounts must already be mutual contacts with no OMEMO nodes.

Flow: B logs in and creates its OMEMO device; A logs in (and is sent B's device list as the last item on presence),
creates its device (B is notified); A sends two messages to B, B one to A. Prints one JSON line with what happened.
"""

import asyncio
import json
import logging
import os
import ssl
import sys
import xml.etree.ElementTree as ET

NS = "eu.siacs.conversations.axolotl"
DEVICELIST = f"{NS}.devicelist"
PUBSUB_ERRORS_NOT_FOUND = {"item-not-found"}


def bare(jid):
    return str(jid).split("/")[0]


def publish_options(slixmpp, fields):
    form = slixmpp.plugins.xep_0004.stanza.Form()
    form["type"] = "submit"
    form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options")
    for k, v in fields.items():
        form.add_field(var=k, value=v)
    return form


class Account:
    """One slixmpp client with its OMEMO session manager and a record of what crossed the server."""

    def __init__(self, name, jid, password, host, port, fingerprints):
        import slixmpp

        self.name, self.jid, self.password, self.host, self.port = name, jid, password, host, port
        self.fingerprints = fingerprints  # bare JID -> identity key (bytes), filled in by main() for both sides
        self.c = slixmpp.ClientXMPP(jid, password)
        self.c.ssl_context.check_hostname = False
        self.c.ssl_context.verify_mode = ssl.CERT_NONE
        for p in ["xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0334"]:
            self.c.register_plugin(p)
        self.sm = None
        self.loop = asyncio.get_running_loop()
        self.devicelist_events = []  # [{"from": bare JID, "devices": [ids]}] as PEP notifications arrived
        self.applied = set()  # (bare JID, device id) of device lists handed to the library
        self.bundles_fetched = []  # "jid/device" downloaded from another account
        self.devicelist_downloads = []  # bare JIDs whose device list this account fetched by IQ
        self.received = asyncio.Queue()  # decrypted plaintexts (str), or "error: ..." strings
        self.trust_decisions = []  # {"jid", "device", "trusted"}
        self.encrypted_seen = 0
        self.errors = []
        self.c.add_event_handler("pubsub_publish", self.on_publish)
        self.c.add_event_handler("message", self.on_message)

    # ---- XMPP side ---------------------------------------------------------------------------------------------

    async def start(self):
        started = self.loop.create_future()
        self.c.add_event_handler("session_start", lambda _e: started.done() or started.set_result(True))
        self.c.add_event_handler("failed_all_auth", lambda _e: started.done() or started.set_exception(RuntimeError(f"{self.jid}: auth failed")))
        self.c.connect((self.host, self.port), force_starttls=True)
        await asyncio.wait_for(started, 40)  # generous: TLS and SCRAM on a loaded two-core machine
        # +notify for device lists, in caps (after binding: slixmpp keys disco features by the bound full JID)
        self.c["xep_0163"].add_interest(DEVICELIST)
        await self.c["xep_0115"].update_caps(broadcast=False)
        self.c.send_presence()

    def on_publish(self, msg):
        items = msg["pubsub_event"]["items"]
        logging.info("%s: event from %s on %s", self.jid, msg["from"], items["node"])
        if items["node"] != DEVICELIST:
            return
        payload = items["item"]["payload"]
        if payload is None:
            return
        from oldmemo.etree import parse_device_list

        sender = bare(msg["from"]) or bare(self.jid)
        devices = parse_device_list(payload)
        logging.info("%s: device list of %s: %s", self.jid, sender, sorted(devices))
        self.devicelist_events.append({"from": sender, "devices": sorted(devices)})
        asyncio.ensure_future(self.apply_device_list(sender, devices))

    async def apply_device_list(self, sender, devices):
        while self.sm is None:  # a notification that arrives while the device is still being created
            await asyncio.sleep(0.05)
        try:
            await self.sm.update_device_list(NS, sender, devices)
        except Exception as err:
            self.errors.append(f"update_device_list({sender}): {type(err).__name__}: {err}")
            logging.exception("update_device_list")
            return
        self.applied.update((sender, d) for d in devices)

    async def wait_devicelist(self, jid, device_id, timeout):
        """Until a notification of `jid`'s device list naming `device_id` has been handed to the library."""
        deadline = self.loop.time() + timeout
        while (jid, device_id) not in self.applied:
            if self.loop.time() > deadline:
                raise TimeoutError(f"{self.jid}: no device-list notification from {jid} naming {device_id}; "
                                   f"events {self.devicelist_events}, errors {self.errors}")
            await asyncio.sleep(0.05)

    def on_message(self, msg):
        enc = msg.xml.find(f"{{{NS}}}encrypted")
        if enc is None or msg["type"] == "error":
            return
        self.encrypted_seen += 1
        asyncio.ensure_future(self.decrypt(msg, enc))

    async def decrypt(self, msg, enc):
        from oldmemo.etree import parse_message

        try:
            message = await parse_message(enc, bare(msg["from"]), bare(self.jid), self.sm)
            plaintext, device, _ = await self.sm.decrypt(message)
            if plaintext is not None:
                await self.received.put({"from": bare(msg["from"]), "device": device.device_id, "text": plaintext.decode("utf-8"), "fallback": msg["body"]})
        except Exception as err:  # every failure is reported, none is retried
            await self.received.put({"error": f"{type(err).__name__}: {err}"})

    async def send_encrypted(self, to, text):
        from oldmemo.etree import serialize_message

        messages, errors = await self.sm.encrypt(frozenset([to]), {NS: text.encode("utf-8")}, identifier=to)
        if errors:
            raise RuntimeError(f"encryption errors: {errors}")
        (message,) = [m for m in messages if m.namespace == NS]
        self.send_stanza(serialize_message(message), to, "I sent you an OMEMO encrypted message but your client doesn't seem to support that.")

    def send_stanza(self, encrypted_elt, to, body):
        m = self.c.make_message(mto=to, mtype="chat")
        if body is not None:
            m["body"] = body
        m.xml.append(encrypted_elt)
        m["store"] = True  # XEP-0334 store hint, as OMEMO clients add
        m.send()

    async def purge_own_omemo(self):
        """Delete this account's OMEMO nodes (left by an earlier run), found in disco#items on its bare JID."""
        import slixmpp

        own = slixmpp.JID(bare(self.jid))
        got = await self.c["xep_0030"].get_items(jid=own)
        for item in got["disco_items"]["items"]:
            node = item[1]
            if node and (node == DEVICELIST or node.startswith(f"{NS}.bundles:")):
                await self.c["xep_0060"].delete_node(own, node)

    async def drop_contact(self, other):
        await self.c.get_roster()
        if self.c.client_roster.has_jid(other):
            await self.c.del_roster_item(other)

    async def wait_mutual(self, other, timeout):
        deadline = self.loop.time() + timeout
        while not (self.c.client_roster.has_jid(other) and self.c.client_roster[other]["subscription"] == "both"):
            if self.loop.time() > deadline:
                raise TimeoutError(f"{self.jid}: subscription with {other} is not mutual")
            await asyncio.sleep(0.1)

    # ---- the session manager's XMPP operations -------------------------------------------------------------------

    def make_session_manager_class(self):
        import omemo
        import slixmpp
        from slixmpp.exceptions import IqError
        from oldmemo.etree import parse_bundle, parse_device_list, serialize_bundle, serialize_device_list

        acct = self
        c = self.c

        def condition(err):
            return err.iq["error"]["condition"] if isinstance(err, IqError) else None

        class SessionManager(omemo.SessionManager):
            @staticmethod
            async def _upload_bundle(bundle):
                try:
                    await c["xep_0060"].publish(
                        None, f"{NS}.bundles:{bundle.device_id}", id="current", payload=serialize_bundle(bundle),
                        options=publish_options(slixmpp, {"pubsub#access_model": "open", "pubsub#max_items": "max"}))
                except Exception as err:
                    raise omemo.BundleUploadFailed(f"{acct.jid}: {err!r}") from err

            @staticmethod
            async def _download_bundle(namespace, bare_jid, device_id):
                try:
                    got = await c["xep_0060"].get_items(slixmpp.JID(bare_jid), f"{NS}.bundles:{device_id}", max_items=1)
                except Exception as err:
                    if condition(err) in PUBSUB_ERRORS_NOT_FOUND:
                        raise omemo.BundleNotFound(f"{bare_jid}/{device_id}") from err
                    raise omemo.BundleDownloadFailed(f"{bare_jid}/{device_id}: {err!r}") from err
                payload = got["pubsub"]["items"]["item"]["payload"]
                if payload is None:
                    raise omemo.BundleNotFound(f"{bare_jid}/{device_id}: no item")
                if bare_jid != bare(acct.jid):
                    acct.bundles_fetched.append(f"{bare_jid}/{device_id}")
                return parse_bundle(payload, bare_jid, device_id)

            @staticmethod
            async def _delete_bundle(namespace, device_id):
                try:
                    await c["xep_0060"].delete_node(None, f"{NS}.bundles:{device_id}")
                except Exception as err:
                    if condition(err) not in PUBSUB_ERRORS_NOT_FOUND:
                        raise omemo.BundleDeletionFailed(repr(err)) from err

            @staticmethod
            async def _upload_device_list(namespace, device_list):
                try:
                    await c["xep_0060"].publish(
                        None, DEVICELIST, id="current", payload=serialize_device_list(device_list),
                        options=publish_options(slixmpp, {"pubsub#access_model": "open"}))
                except Exception as err:
                    raise omemo.DeviceListUploadFailed(f"{acct.jid}: {err!r}") from err

            @staticmethod
            async def _download_device_list(namespace, bare_jid):
                acct.devicelist_downloads.append(bare_jid)
                try:
                    got = await c["xep_0060"].get_items(slixmpp.JID(bare_jid), DEVICELIST, max_items=1)
                except Exception as err:
                    if condition(err) in PUBSUB_ERRORS_NOT_FOUND:
                        return {}
                    raise omemo.DeviceListDownloadFailed(f"{bare_jid}: {err!r}") from err
                payload = got["pubsub"]["items"]["item"]["payload"]
                return {} if payload is None else parse_device_list(payload)

            async def _evaluate_custom_trust_level(self, device):
                levels = {"trusted": omemo.TrustLevel.TRUSTED, "distrusted": omemo.TrustLevel.DISTRUSTED, "undecided": omemo.TrustLevel.UNDECIDED}
                if device.trust_level_name not in levels:
                    raise omemo.UnknownTrustLevel(device.trust_level_name)
                return levels[device.trust_level_name]

            async def _make_trust_decision(self, undecided, identifier):
                for device in undecided:
                    expected = acct.fingerprints.get(device.bare_jid)
                    ok = expected is not None and expected == device.identity_key
                    acct.trust_decisions.append({"jid": device.bare_jid, "device": device.device_id, "trusted": ok})
                    await self.set_trust(device.bare_jid, device.identity_key, "trusted" if ok else "distrusted")

            @staticmethod
            async def _send_message(message, bare_jid):
                from oldmemo.etree import serialize_message

                acct.send_stanza(serialize_message(message), bare_jid, None)

        return SessionManager

    async def create_device(self):
        import oldmemo
        import omemo
        from omemo.storage import Just, Nothing

        class MemoryStorage(omemo.Storage):
            def __init__(self):
                super().__init__()
                self.data = {}

            async def _load(self, key):
                return Just(self.data[key]) if key in self.data else Nothing()

            async def _store(self, key, value):
                self.data[key] = value

            async def _delete(self, key):
                self.data.pop(key, None)

        storage = MemoryStorage()
        sm = await self.make_session_manager_class().create([oldmemo.Oldmemo(storage)], storage, bare(self.jid), None, "undecided")
        await sm.after_history_sync()
        self.sm = sm
        own, _ = await sm.get_own_device_information()
        self.fingerprints[bare(self.jid)] = own.identity_key
        return own


async def next_plaintext(acct, timeout=30):
    return await asyncio.wait_for(acct.received.get(), timeout)


async def main(argv):
    verbose = os.environ.get("OMEMO_CHAT_VERBOSE", "")
    logging.basicConfig(level=logging.DEBUG if verbose == "debug" else logging.INFO if verbose else logging.WARNING, stream=sys.stderr)
    subscribe = "--subscribe" in argv
    a_jid, a_pw, a_host, a_port, b_jid, b_pw, b_host, b_port = [x for x in argv if x != "--subscribe"]
    fingerprints = {}
    a = Account("a", a_jid, a_pw, a_host, int(a_port), fingerprints)
    b = Account("b", b_jid, b_pw, b_host, int(b_port), fingerprints)
    out = {}

    await b.start()
    if subscribe:
        await b.purge_own_omemo()
        await b.drop_contact(a_jid)
    await asyncio.sleep(1)  # the server asks B's caps once; let that finish before B publishes
    b_dev = await b.create_device()
    await a.start()
    if subscribe:
        await a.purge_own_omemo()
        await a.drop_contact(b_jid)
        a.c.send_presence_subscription(b_jid)
        await a.wait_mutual(b_jid, 30)
        await b.wait_mutual(a_jid, 30)
    a_dev = await a.create_device()
    out["a_device"], out["b_device"] = a_dev.device_id, b_dev.device_id

    # Each learns the other's device only from PEP notifications (A: B's last item on presence; B: A's publish).
    await a.wait_devicelist(b_jid, b_dev.device_id, 30)
    await b.wait_devicelist(a_jid, a_dev.device_id, 30)

    await a.send_encrypted(b_jid, "Hello Bob, this is OMEMO over Comity.")
    out["b_got_1"] = await next_plaintext(b)
    await b.send_encrypted(a_jid, "Hi Alice, decrypted fine; here is my answer.")
    out["a_got_1"] = await next_plaintext(a)
    await a.send_encrypted(b_jid, "Second message, on the established session. \u00e9\u2713")
    out["b_got_2"] = await next_plaintext(b)

    for acct in (a, b):
        out[acct.name] = {
            "devicelist_events": acct.devicelist_events,
            "devicelist_downloads": acct.devicelist_downloads,
            "bundles_fetched": acct.bundles_fetched,
            "trust_decisions": acct.trust_decisions,
            "encrypted_seen": acct.encrypted_seen,
            "errors": acct.errors,
            "identity_key": fingerprints[bare(acct.jid)].hex(),
        }
    if subscribe:  # leave the peer as found: no roster item, no OMEMO nodes
        await b.drop_contact(a_jid)
        await b.purge_own_omemo()
    for acct in (a, b):
        acct.c.disconnect()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
