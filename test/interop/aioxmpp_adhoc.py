#!/usr/bin/env python3
"""aioxmpp 0.13 (Debian's python3-aioxmpp) as an ordinary user against Comity: list the server's ad-hoc commands
(XEP-0050 §2.2) and execute the `ping` command, the check aioxmpp's own end-to-end tests make unless a server is
marked with its no-adhoc-ping quirk. Prints one JSON line per result and exits 0 when the steps ran.

Usage: aioxmpp_adhoc.py --port PORT --jid USER@DOMAIN --password PW [--timeout S]
"""
import argparse
import asyncio
import json
import sys

import aioxmpp
import aioxmpp.adhoc


def emit(event, **kw):
    print(json.dumps({"event": event, **kw}), flush=True)


async def main(args):
    jid = aioxmpp.JID.fromstr(args.jid)
    # The test server's certificate is self-signed and made at start: no verification on loopback.
    client = aioxmpp.PresenceManagedClient(
        jid,
        aioxmpp.make_security_layer(args.password, no_verify=True),
        override_peer=[("127.0.0.1", args.port, aioxmpp.connector.STARTTLSConnector())],
    )
    async with client.connected():
        adhoc = client.summon(aioxmpp.adhoc.AdHocClient)
        server = aioxmpp.JID(localpart=None, domain=jid.domain, resource=None)
        emit("supports", ok=await adhoc.supports_commands(server))
        items = await adhoc.get_commands(server)
        emit("commands", nodes=[i.node for i in items])
        session = await adhoc.execute(server, "ping")
        try:
            resp = session.response
            emit("ping", status=str(resp.status.value if hasattr(resp.status, "value") else resp.status),
                 notes=[n.body for n in resp.notes])
        finally:
            await session.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--timeout", type=float, default=60)
    a = p.parse_args()
    try:
        asyncio.run(asyncio.wait_for(main(a), a.timeout))
    except Exception as e:  # report, do not hide: the test prints stderr on failure
        emit("error", error=f"{type(e).__name__}: {e}")
        sys.exit(1)
