#!/usr/bin/env python3
"""aioxmpp 0.13 (Debian's python3-aioxmpp) MUC client (aioxmpp.MUCClient) against a Comity test server: the behaviours
aioxmpp's own end-to-end MUC tests check (upstream tests/muc/test_e2e.py, not shipped by Debian), written anew.

Three users in one process: "first" creates the room (and accepts the default configuration: Comity keeps a new
room locked until then), "second" joins, they chat both ways, first changes the subject, second changes nick, first
takes and gives back second's voice, lists the members and the owners, "third" joins and is kicked, second leaves.
Then the script prints `await_ghost` and waits for an occupant with nick "Ghost" (joined by the node test with a raw
client, whose socket the test then destroys without leaving), and then `await_bouncer` for "Bouncer" (a raw client
that answers the room's groupchat with a recipient-unavailable error); first keeps sending groupchat until the room
removes each. One JSON line per observed behaviour; exit 0 when every step ran, 1 (with an `error` event) otherwise.

aioxmpp 0.13 has no XEP-0313 client (no aioxmpp.mam), so the archive is not queried here.

Usage: aioxmpp_muc.py --port PORT --room ROOM@SERVICE --password-first PW --password-second PW --password-third PW
                      [--domain localhost] [--timeout S]
"""
import argparse
import asyncio
import json
import sys

import aioxmpp
import aioxmpp.muc
import aioxmpp.forms

WAIT = 15  # seconds for any one expected signal


def emit(event, **kw):
    print(json.dumps({"event": event, **kw}), flush=True)


def codes(kw):
    return sorted(int(c) for c in (kw.get("muc_status_codes") or set()))


def mode(kw):
    m = kw.get("muc_leave_mode")
    return m.name if m is not None else None


def text(value):
    """A LanguageMap (body, subject) as one string."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return next(iter(value.values()), None)


class Recorder:
    """Every signal a Room emits, as (name, args, kwargs), to wait on."""

    SIGNALS = ["on_enter", "on_failure", "on_exit", "on_join", "on_leave", "on_message", "on_topic_changed",
               "on_nick_changed", "on_muc_role_changed", "on_muc_affiliation_changed"]

    def __init__(self, room):
        self.seen = []
        for name in self.SIGNALS:
            getattr(room, name).connect(self._make(name))

    def _make(self, name):
        def cb(*args, **kwargs):
            self.seen.append((name, args, kwargs))
            # never return a true value: that would disconnect the callback
        return cb

    async def wait(self, name, pred=lambda a, k: True, timeout=WAIT, start=0):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for n, a, k in self.seen[start:]:
                if n == name and pred(a, k):
                    return a, k
            if loop.time() > deadline:
                raise TimeoutError(f"no {name} within {timeout}s; saw {[s[0] for s in self.seen]}")
            await asyncio.sleep(0.05)


def make_client(jid, password, port):
    return aioxmpp.PresenceManagedClient(
        aioxmpp.JID.fromstr(jid),
        aioxmpp.make_security_layer(password, no_verify=True),
        override_peer=[("127.0.0.1", port, aioxmpp.connector.STARTTLSConnector())],
    )


def groupchat(room_jid, body):
    msg = aioxmpp.Message(type_=aioxmpp.MessageType.GROUPCHAT, to=room_jid)
    msg.body[None] = body
    return msg


async def join(client, room_jid, nick):
    muc = client.summon(aioxmpp.MUCClient)
    room, fut = muc.join(room_jid, nick, autorejoin=False)
    rec = Recorder(room)  # attached before yielding: no signal is lost
    await asyncio.wait_for(fut, WAIT)
    await rec.wait("on_enter")
    return muc, room, rec


async def main(a):
    room_jid = aioxmpp.JID.fromstr(a.room)
    first = make_client(f"first@{a.domain}/e2e", a.password_first, a.port)
    second = make_client(f"second@{a.domain}/e2e", a.password_second, a.port)
    third = make_client(f"third@{a.domain}/e2e", a.password_third, a.port)
    async with first.connected(), second.connected(), third.connected():
        # Join: the room is created, the joined future and on_enter fire, first is owner and moderator.
        muc1, room1, rec1 = await join(first, room_jid, "firstwitch")
        emit("joined", nick=room1.me.nick, role=room1.me.role, affiliation=room1.me.affiliation,
             active=room1.muc_active, joined=room1.muc_joined)
        # Accept the default configuration (an instant room): Comity keeps a new room locked until then.
        form = aioxmpp.muc.ConfigurationForm.from_xso(await muc1.get_room_config(room_jid))
        await muc1.set_room_config(room_jid, form.render_reply())
        emit("configured")

        # A second user joins; the first sees on_join.
        mark = len(rec1.seen)
        muc2, room2, rec2 = await join(second, room_jid, "secondwitch")
        (member,), _ = await rec1.wait("on_join", start=mark)
        emit("on_join", seen_by="first", nick=member.nick, role=member.role, affiliation=member.affiliation,
             direct_jid=str(member.direct_jid.bare()) if member.direct_jid else None)
        emit("second_joined", role=room2.me.role, affiliation=room2.me.affiliation,
             members=sorted(m.nick for m in room2.members))

        # Groupchat both ways.
        mark1, mark2 = len(rec1.seen), len(rec2.seen)
        room1.send_message(groupchat(room_jid, "hello from first"))
        (msg, member, *_), _ = await rec2.wait("on_message", lambda a, k: a[1] is not room2.me, start=mark2)
        emit("on_message", seen_by="second", nick=member.nick, body=text(msg.body), type=msg.type_.value)
        room2.send_message(groupchat(room_jid, "hello from second"))
        (msg, member, *_), _ = await rec1.wait("on_message", lambda a, k: a[1] is not room1.me, start=mark1)
        emit("on_message", seen_by="first", nick=member.nick, body=text(msg.body), type=msg.type_.value)

        # Subject change.
        mark2 = len(rec2.seen)
        await room1.set_topic({None: "Coven business"})
        (member, topic), kw = await rec2.wait("on_topic_changed", start=mark2)
        emit("on_topic_changed", seen_by="second", topic=text(topic), nick=kw.get("muc_nick"),
             subject=text(room2.muc_subject))

        # Nick change.
        # (aioxmpp 0.13 passes no status codes with on_nick_changed, so the 303 is not visible here.)
        mark1, mark2 = len(rec1.seen), len(rec2.seen)
        await room2.set_nick("secondwitch2")
        (member, old, new), kw = await rec1.wait("on_nick_changed", start=mark1)
        emit("on_nick_changed", seen_by="first", old=old, new=new, nick_now=member.nick)
        (member, old, new), kw = await rec2.wait("on_nick_changed", start=mark2)
        emit("on_nick_changed", seen_by="second", old=old, new=new, is_me=member is room2.me, me_now=room2.me.nick)

        # Voice: a moderator makes second a visitor and gives the voice back.
        mark1, mark2 = len(rec1.seen), len(rec2.seen)
        await room1.muc_set_role("secondwitch2", "visitor", reason="hush")
        (_, member), kw = await rec2.wait("on_muc_role_changed", start=mark2)
        emit("role_changed", seen_by="second", nick=member.nick, role=member.role, reason=kw.get("reason"),
             is_me=member is room2.me)
        (_, member), kw = await rec1.wait("on_muc_role_changed", start=mark1)
        emit("role_changed", seen_by="first", nick=member.nick, role=member.role, reason=kw.get("reason"))
        mark1, mark2 = len(rec1.seen), len(rec2.seen)
        await room1.muc_set_role("secondwitch2", "participant")
        await rec1.wait("on_muc_role_changed", lambda a, k: a[1].role == "participant", start=mark1)
        (_, member), kw = await rec2.wait("on_muc_role_changed", lambda a, k: a[1].role == "participant", start=mark2)
        emit("voice_back", seen_by="second", nick=member.nick, role=member.role)

        # The member lists: occupants (room.members) and the owner list (muc#admin).
        emit("members", seen_by="first", nicks=sorted(m.nick for m in room1.members),
             roles=sorted(f"{m.nick}={m.role}" for m in room1.members))
        owners = await muc1.get_affiliated(room_jid, "owner")
        emit("owners", jids=sorted(str(j) for j in owners))

        # Kick: third joins, first kicks it with a reason; third sees on_exit, the others on_leave.
        mark1, mark2 = len(rec1.seen), len(rec2.seen)
        muc3, room3, rec3 = await join(third, room_jid, "thirdwitch")
        await rec1.wait("on_join", lambda a, k: a[0].nick == "thirdwitch", start=mark1)
        await rec2.wait("on_join", lambda a, k: a[0].nick == "thirdwitch", start=mark2)
        mark1, mark2 = len(rec1.seen), len(rec2.seen)
        await room1.kick(next(m for m in room1.members if m.nick == "thirdwitch"), "out you go")
        _, kw = await rec3.wait("on_exit")
        emit("on_exit", seen_by="third", mode=mode(kw), reason=kw.get("muc_reason"), codes=codes(kw),
             active=room3.muc_active)
        (member,), kw = await rec2.wait("on_leave", start=mark2)
        emit("on_leave", seen_by="second", nick=member.nick, mode=mode(kw), reason=kw.get("muc_reason"), codes=codes(kw))
        (member,), kw = await rec1.wait("on_leave", start=mark1)
        emit("on_leave", seen_by="first", nick=member.nick, mode=mode(kw), reason=kw.get("muc_reason"), codes=codes(kw))

        # Leaving: second leaves; second sees on_exit, first on_leave.
        mark1 = len(rec1.seen)
        await asyncio.wait_for(room2.leave(), WAIT)
        _, kw = await rec2.wait("on_exit")
        emit("left", seen_by="second", mode=mode(kw), codes=codes(kw), active=room2.muc_active)
        (member,), kw = await rec1.wait("on_leave", start=mark1)
        emit("on_leave", seen_by="first", nick=member.nick, mode=mode(kw), codes=codes(kw))

        # An occupant whose session ends without leaving ("Ghost"), then one whose client bounces the room's groupchat
        # with an error (upstream's test_kick_due_to_error): the room must remove each while first keeps talking.
        for ghost, prefix in (("Ghost", "ghost"), ("Bouncer", "bouncer")):
            mark1 = len(rec1.seen)
            emit(f"await_{prefix}")
            (member,), _ = await rec1.wait("on_join", lambda a, k: a[0].nick == ghost, start=mark1, timeout=20)
            emit(f"{prefix}_joined", nick=member.nick)
            mark1 = len(rec1.seen)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            left = None
            n = 0
            while left is None and loop.time() < deadline:
                n += 1
                room1.send_message(groupchat(room_jid, f"anyone there? {prefix} {n}"))
                for name, args, kw in rec1.seen[mark1:]:
                    if name == "on_leave" and args[0].nick == ghost:
                        left = kw
                await asyncio.sleep(0.5)
            if left is None:
                raise TimeoutError(f"the room did not remove {ghost} within 15 s")
            emit(f"{prefix}_left", mode=mode(left), codes=codes(left), members=sorted(m.nick for m in room1.members))

        await asyncio.wait_for(room1.leave(), WAIT)
        emit("done")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--room", required=True)
    p.add_argument("--domain", default="localhost")
    p.add_argument("--password-first", required=True)
    p.add_argument("--password-second", required=True)
    p.add_argument("--password-third", required=True)
    p.add_argument("--timeout", type=float, default=50)
    a = p.parse_args()
    try:
        asyncio.run(asyncio.wait_for(main(a), a.timeout))
    except BaseException as e:  # report, do not hide: the test prints stderr on failure
        emit("error", error=f"{type(e).__name__}: {e}")
        sys.exit(1)
