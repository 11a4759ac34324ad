# slixmpp XEP-0050 ad-hoc commands client (with XEP-0030 command discovery and XEP-0004 forms) for the Comity adhoc tests; one JSON line per result.
"""Log in with slixmpp and run ad-hoc command steps against the server's domain JID.

Steps come as a JSON list (--steps); each is one of:
  {"list": true}                          disco#items of the commands node   -> event "commands"
  {"info": NODE}                          disco#info of a command node       -> event "command_info"
  {"execute": NODE, "then": [SUBMIT...]}  execute, then each submission      -> one event "command" per answer
     SUBMIT: {"action": "next"|"complete"|"prev"|"cancel"|"execute", "fields": {VAR: VALUE or [VALUES]}}
  {"wait_message": N}                     send presence, wait for N messages -> event "message" each
Exit codes: 0 done (command errors are reported as events, not failures), 1 login failed, 2 timed out,
3 connection failed. Run with Debian's /usr/bin/python3 (python3-slixmpp 1.8.3).
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import ssl
import sys

COMMANDS_NS = "http://jabber.org/protocol/commands"


def emit(event, **fields):
    """Print one JSON result line and flush it so the test sees it at once."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def parse_args(argv):
    """Command-line options: where to connect, who to be, which steps to run."""
    p = argparse.ArgumentParser(description="slixmpp ad-hoc command client for Comity tests")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--steps", required=True, help="JSON list of steps (see the module docstring)")
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--debug", action="store_true", help="slixmpp debug log (XML) on stderr")
    return p.parse_args(argv)


def error_fields(iq):
    """The stanza error of an IQ as plain fields, with the XEP-0050 specific condition if any."""
    err = iq["error"]
    app = None
    for child in err.xml:
        if child.tag.startswith("{%s}" % COMMANDS_NS):
            app = child.tag.split("}", 1)[1]
    return {"ok": False, "condition": err["condition"], "type": err["type"], "text": err["text"], "app_condition": app}


def form_fields(form):
    """A data form as JSON: type, title, fields with their values and options, reported columns and items."""
    fields = []
    for var, f in form.get_fields().items():
        fields.append({
            "var": var, "type": f["type"], "label": f["label"], "required": f["required"],
            "values": [v.text or "" for v in f.xml.findall("{jabber:x:data}value")],
            "options": [o["value"] for o in f.get_options()],
        })
    items = []
    for item_xml in form.xml.findall("{jabber:x:data}item"):
        items.append({f.get("var"): [v.text or "" for v in f.findall("{jabber:x:data}value")]
                      for f in item_xml.findall("{jabber:x:data}field")})
    return {"type": form["type"], "title": form["title"], "fields": fields,
            "reported": list(form.get_reported().keys()), "items": items}


def command_fields(iq):
    """The answer to a command step as JSON."""
    cmd = iq["command"]
    out = {"ok": True, "node": cmd["node"], "status": cmd["status"], "sessionid": cmd["sessionid"],
           "actions": sorted(cmd["actions"]), "notes": [{"type": t, "text": x} for (t, x) in cmd["notes"]]}
    actions = cmd.xml.find("{%s}actions" % COMMANDS_NS)
    out["execute"] = actions.get("execute") if actions is not None else None
    if cmd.xml.find("{jabber:x:data}x") is not None:
        out["form"] = form_fields(cmd["form"])
    return out


async def run(args):
    """Connect, log in, run the steps, disconnect; returns the exit code."""
    import slixmpp
    from slixmpp.exceptions import IqError

    steps = json.loads(args.steps)
    # PLAIN over TLS: slixmpp's SCRAM channel-binding handling is covered by test/c2s/slixmpp.test.ts.
    xmpp = slixmpp.ClientXMPP(args.jid, args.password, plugin_config={
        "feature_mechanisms": {"unencrypted_plain": False, "use_mechs": ["PLAIN"]}})
    xmpp.ssl_context.check_hostname = False
    xmpp.ssl_context.verify_mode = ssl.CERT_NONE
    for plugin in ("xep_0004", "xep_0030", "xep_0050"):
        xmpp.register_plugin(plugin)

    loop = asyncio.get_running_loop()
    session = loop.create_future()
    messages = asyncio.Queue()

    def settle(value=None, error=None):
        if not session.done():
            if error is not None:
                session.set_exception(error)
            else:
                session.set_result(value)

    xmpp.add_event_handler("session_start", lambda _e: settle(str(xmpp.boundjid)))
    xmpp.add_event_handler("failed_all_auth", lambda _e: settle(error=PermissionError("authentication failed")))
    xmpp.add_event_handler("connection_failed", lambda e: settle(error=ConnectionError(str(e))))
    xmpp.add_event_handler("disconnected", lambda r: settle(error=ConnectionError("disconnected: %s" % (r,))))
    xmpp.add_event_handler("message", lambda m: messages.put_nowait(m) if m["body"] else None)

    xmpp.connect((args.host, args.port), force_starttls=True)
    try:
        bound = await session
    except PermissionError as e:
        emit("auth_failed", reason=str(e))
        xmpp.abort()
        return 1
    except ConnectionError as e:
        emit("connection_failed", reason=str(e))
        xmpp.abort()
        return 3
    emit("session_start", jid=bound)
    server = xmpp.boundjid.domain
    adhoc = xmpp["xep_0050"]

    for step in steps:
        if "wait_message" in step:
            xmpp.send_presence()
            emit("presence_sent")
            for _ in range(int(step["wait_message"])):
                msg = await messages.get()
                emit("message", **{"from": str(msg["from"]), "type": msg["type"], "body": msg["body"]})
        elif "list" in step:
            try:
                iq = await adhoc.get_commands(server, timeout=args.timeout)
                emit("commands", ok=True, items=[{"jid": str(j), "node": n, "name": nm} for (j, n, nm) in iq["disco_items"]["items"]])
            except IqError as e:
                emit("commands", **error_fields(e.iq))
        elif "info" in step:
            try:
                iq = await xmpp["xep_0030"].get_info(jid=server, node=step["info"], timeout=args.timeout)
                info = iq["disco_info"]
                emit("command_info", ok=True, node=step["info"],
                     identities=[{"category": c, "type": t, "name": n} for (c, t, _l, n) in info.get_identities(dedupe=False)],
                     features=sorted(info.get_features(dedupe=True)))
            except IqError as e:
                emit("command_info", node=step["info"], **error_fields(e.iq))
        elif "execute" in step:
            node = step["execute"]
            try:
                iq = await adhoc.send_command(server, node, action="execute", timeout=args.timeout)
            except IqError as e:
                emit("command", node=node, step=0, **error_fields(e.iq))
                continue
            answer = command_fields(iq)
            emit("command", step=0, **answer)
            for i, submit in enumerate(step.get("then", []), start=1):
                payload = None
                if submit.get("fields"):
                    payload = xmpp["xep_0004"].make_form(ftype="submit")
                    for var, value in submit["fields"].items():
                        payload.add_field(var=var, value=value)
                try:
                    iq = await adhoc.send_command(server, node, action=submit.get("action", "execute"), payload=payload,
                                                  sessionid=answer["sessionid"], timeout=args.timeout)
                except IqError as e:
                    emit("command", node=node, step=i, **error_fields(e.iq))
                    break
                answer = command_fields(iq)
                emit("command", step=i, **answer)
        else:
            emit("error", reason="unknown step %r" % (step,))
            return 3

    await xmpp.disconnect(wait=2.0)
    emit("disconnected")
    return 0


def main(argv):
    """Run the client within the timeout, whatever happens."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR, stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")

    def hard_stop(_signum, _frame):
        emit("timeout", hard=True)
        os._exit(2)
    signal.signal(signal.SIGALRM, hard_stop)
    signal.alarm(int(args.timeout) + 5)

    try:
        import slixmpp  # noqa: F401
    except ImportError as e:
        emit("error", reason="slixmpp is not importable: %s (install python3-slixmpp)" % e)
        return 3

    async def bounded():
        try:
            return await asyncio.wait_for(run(args), timeout=args.timeout)
        except asyncio.TimeoutError:
            emit("timeout", seconds=args.timeout)
            return 2

    try:
        return asyncio.run(bounded())
    except Exception as e:  # report, never hang or dump a bare traceback to the test
        emit("error", reason="%s: %s" % (type(e).__name__, e))
        return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
