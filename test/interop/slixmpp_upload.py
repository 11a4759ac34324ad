#!/usr/bin/env python3
"""XEP-0363 with two real client libraries against Comity, each as its own project's upload test does it.

slixmpp (Debian's python3-slixmpp): xep_0363's upload_file() finds the service through disco (items of the server,
then info of each: identity store/file and the feature), reads max-file-size from the XEP-0128 form, requests a slot
and PUTs the bytes with aiohttp; then the GET URL is fetched with aiohttp and compared, as slixmpp's itest
test_httpupload does. It also checks that a file over the advertised limit is refused before any request.

aioxmpp (python3-aioxmpp): find the entity with the upload feature through disco (as aioxmpp's e2e require_feature
does), request_slot() for "filename.jpg" as its test_e2e does, then PUT with aiohttp and GET it back.

Prints one JSON line per result and exits 0 when every step ran.
Usage: slixmpp_upload.py {slixmpp|aioxmpp} --port PORT --jid USER@DOMAIN --password PW [--timeout S]
"""
import argparse
import asyncio
import json
import os
import ssl
import sys
from io import BytesIO

import aiohttp


def emit(event, **kw):
    print(json.dumps({"event": event, **kw}), flush=True)


async def with_slixmpp(args):
    import slixmpp
    from slixmpp.plugins.xep_0363.http_upload import FileTooBig

    client = slixmpp.ClientXMPP(args.jid, args.password)
    # The test server's certificate is self-signed and made at start: no verification on loopback.
    client.ssl_context.check_hostname = False
    client.ssl_context.verify_mode = ssl.CERT_NONE
    client.register_plugin("xep_0030")
    client.register_plugin("xep_0128")
    client.register_plugin("xep_0363")
    ready = asyncio.get_running_loop().create_future()
    client.add_event_handler("session_start", lambda _e: ready.done() or ready.set_result(True))
    client.add_event_handler("failed_all_auth", lambda _e: ready.done() or ready.set_exception(RuntimeError("auth failed")))
    client.connect(("127.0.0.1", args.port), force_starttls=True)
    await asyncio.wait_for(ready, 40)
    disco = client["xep_0030"]

    async def info_from_domain(domain=None, timeout=None, **_kw):
        # COMPAT: slixmpp 1.8.3 (Debian 12) hands coroutines to asyncio.wait(), which Python 3.11 refuses, so its
        # get_info_from_domain() always fails; this is the same walk (the domain's info, then each item's) with
        # gather(). xep_0363's own find_upload_service() and form reading run unchanged on top of it.
        domain = domain or client.boundjid.domain
        items = (await disco.get_items(domain, timeout=timeout))["disco_items"]["items"]
        return await asyncio.gather(disco.get_info(domain, timeout=timeout), *[disco.get_info(i[0], timeout=timeout) for i in items])

    disco.get_info_from_domain = info_from_domain
    try:
        data = os.urandom(300_000)
        url = await client["xep_0363"].upload_file("toto.txt", input_file=BytesIO(data), size=len(data), timeout=30)
        emit("uploaded", url=url, service=str(client["xep_0363"].upload_service), max=client["xep_0363"].max_file_size)
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as resp:
                body = await resp.read()
                emit("downloaded", status=resp.status, same=body == data, type=resp.headers.get("Content-Type"))
        try:
            await client["xep_0363"].upload_file("big.bin", input_file=BytesIO(b""), size=client["xep_0363"].max_file_size + 1, timeout=30)
            emit("too-big", refused=False)
        except FileTooBig:
            emit("too-big", refused=True)
    finally:
        client.disconnect()


async def with_aioxmpp(args):
    import aioxmpp
    import aioxmpp.disco
    import aioxmpp.httpupload

    jid = aioxmpp.JID.fromstr(args.jid)
    client = aioxmpp.PresenceManagedClient(
        jid,
        aioxmpp.make_security_layer(args.password, no_verify=True),
        override_peer=[("127.0.0.1", args.port, aioxmpp.connector.STARTTLSConnector())],
    )
    async with client.connected():
        disco = client.summon(aioxmpp.DiscoClient)
        server = aioxmpp.JID(localpart=None, domain=jid.domain, resource=None)
        target = None
        for item in (await disco.query_items(server)).items:
            info = await disco.query_info(item.jid)
            if "urn:xmpp:http:upload:0" in info.features:
                target = item.jid
        emit("found", service=str(target))
        data = os.urandom(1024)
        slot = await aioxmpp.httpupload.request_slot(client, target, "filename.jpg", len(data), "image/jpg")
        emit("slot", ok=isinstance(slot, aioxmpp.httpupload.xso.Slot) and bool(slot.get.url) and bool(slot.put.url))
        headers = {"Content-Type": "image/jpg", **dict(slot.put.headers)}
        async with aiohttp.ClientSession() as session:
            async with session.put(slot.put.url, data=data, headers=headers) as resp:
                emit("put", status=resp.status)
            async with session.get(slot.get.url) as resp:
                body = await resp.read()
                emit("downloaded", status=resp.status, same=body == data, type=resp.headers.get("Content-Type"))
        # §5: a file over the limit is refused with file-too-large (aioxmpp raises the stanza error).
        try:
            await aioxmpp.httpupload.request_slot(client, target, "huge.bin", 10**12, "application/octet-stream")
            emit("too-big", condition=None)
        except aioxmpp.errors.XMPPError as e:
            emit("too-big", condition=e.condition.value[1] if isinstance(e.condition.value, tuple) else str(e.condition))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("library", choices=["slixmpp", "aioxmpp"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--timeout", type=float, default=60)
    a = p.parse_args()
    try:
        asyncio.run(asyncio.wait_for(with_slixmpp(a) if a.library == "slixmpp" else with_aioxmpp(a), a.timeout))
    except Exception as e:  # report, do not hide: the test prints stderr on failure
        emit("error", error=f"{type(e).__name__}: {e}")
        sys.exit(1)
