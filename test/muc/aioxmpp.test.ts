// XEP-0045 with aioxmpp 0.13's MUCClient (Debian's python3-aioxmpp), covering what aioxmpp's own end-to-end MUC
// tests (upstream tests/muc/test_e2e.py, not in Debian's package) check of a server: joining and creating a room,
// on_join, groupchat both ways, subject and nick changes, voice taken and given back, the member and owner lists,
// a kick with a reason, leaving, an occupant whose session ends without leaving being removed while the room keeps
// talking (a raw client whose socket is destroyed), and one whose client bounces the room's groupchat with
// recipient-unavailable removed with 333, which aioxmpp reports as LeaveMode.ERROR (upstream's
// test_kick_due_to_error). aioxmpp 0.13 has no XEP-0313 client, so the archive is not queried. Without aioxmpp the
// test is skipped, except under CI=true, where that is a failure.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { Peer, MUC } from "./kit.ts";

const PYTHON = "/usr/bin/python3";
const SCRIPT = fileURLToPath(new URL("./aioxmpp_muc.py", import.meta.url));
const ROOM = "coven@conference.localhost";
const probe = spawnSync(PYTHON, ["-c", "import aioxmpp.muc"], { encoding: "utf8", timeout: 60_000 });
const missing = probe.error !== undefined || probe.status !== 0;
const skip = missing && process.env["CI"] !== "true" ? "python3-aioxmpp is not installed (scripts/install-test-deps.sh)" : false;

let ts: TestServer;
const children = new Set<ChildProcess>();
const peers: Peer[] = [];
before(async () => {
  ts = await createTestServer(
    { hosts: [{ domain: "localhost", muc: { domain: "conference.localhost" } }] },
    { users: { "first@localhost": "pw-first", "second@localhost": "pw-second", "third@localhost": "pw-third", "ghost@localhost": "pw-ghost", "bouncer@localhost": "pw-bouncer" } },
  );
});
after(async () => {
  for (const c of children) c.kill("SIGKILL");
  for (const p of peers) p.client.close();
  await ts?.stop();
});

type Ev = Record<string, unknown>;

test("aioxmpp's MUCClient: join, chat, subject, nick, voice, members, kick, leave, ghosts removed", { skip, timeout: 90_000 }, async () => {
  assert.ok(!missing, `aioxmpp.muc is not importable by ${PYTHON}: ${probe.stderr}`);
  const events: Ev[] = [];
  let stderr = "";
  const child = spawn(
    PYTHON,
    [SCRIPT, "--port", String(ts.c2sPort), "--room", ROOM, "--password-first", "pw-first", "--password-second", "pw-second", "--password-third", "pw-third", "--timeout", "50"],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" } },
  );
  children.add(child);
  const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  let out = "";
  let onEvent: (e: Ev) => void = () => {};
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
    let nl: number;
    while ((nl = out.indexOf("\n")) >= 0) {
      const line = out.slice(0, nl).trim();
      out = out.slice(nl + 1);
      if (line === "") continue;
      const e = JSON.parse(line) as Ev;
      events.push(e);
      onEvent(e);
    }
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) =>
    child.on("close", (code) => {
      clearTimeout(killer);
      children.delete(child);
      resolve(code);
    }),
  );
  const seen = (name: string) =>
    new Promise<Ev | undefined>((resolve) => {
      const prev = onEvent;
      onEvent = (e) => {
        prev(e);
        if (e["event"] === name) resolve(e);
      };
      void exited.then(() => resolve(undefined));
    });
  const why = () => `${JSON.stringify(events)}\n${stderr.slice(-3000)}`;

  // The ghost: a raw client joins when the script is ready for it, and its socket is destroyed without leaving once
  // the script has seen it join. Then the bouncer: a raw client that answers the room's first groupchat with an
  // error whose condition says it is gone (XEP-0045 §18.1.2, what upstream's test_kick_due_to_error provokes).
  const awaitGhost = seen("await_ghost");
  const ghostJoined = seen("ghost_joined");
  const awaitBouncer = seen("await_bouncer");
  assert.ok(await awaitGhost, `the script never got to the ghost: ${why()}`);
  const ghost = await Peer.login(ts.c2sPort, "ghost", "pw-ghost", "g");
  peers.push(ghost);
  ghost.send(`<presence to='${ROOM}/Ghost'><x xmlns='${MUC}'><history maxstanzas='0'/></x></presence>`);
  assert.ok(await ghostJoined, `the script never saw the ghost join: ${why()}`);
  ghost.client.socket.destroy();

  assert.ok(await awaitBouncer, `the script never got to the bouncer: ${why()}`);
  const bouncer = await Peer.login(ts.c2sPort, "bouncer", "pw-bouncer", "b");
  peers.push(bouncer);
  bouncer.send(`<presence to='${ROOM}/Bouncer'><x xmlns='${MUC}'><history maxstanzas='0'/></x></presence>`);
  const gc = await bouncer.next((e) => e.name === "message" && e.attrs["type"] === "groupchat" && /^anyone there\? bouncer/.test(e.getChildText("body") ?? ""), "the room's groupchat", 20_000);
  bouncer.send(
    `<message type='error' to='${gc.attrs["from"]}'${gc.attrs["id"] ? ` id='${gc.attrs["id"]}'` : ""}>` +
      `<error type='cancel'><recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`,
  );

  const code = await exited;
  assert.equal(code, 0, why());
  const by = (name: string, seenBy?: string) => {
    const e = events.find((x) => x["event"] === name && (seenBy === undefined || x["seen_by"] === seenBy));
    assert.ok(e, `no ${name}${seenBy ? ` seen by ${seenBy}` : ""}: ${why()}`);
    const { event: _e, seen_by: _s, ...rest } = e;
    return rest;
  };

  assert.deepEqual(by("joined"), { nick: "firstwitch", role: "moderator", affiliation: "owner", active: true, joined: true });
  by("configured");
  assert.deepEqual(by("on_join", "first"), { nick: "secondwitch", role: "participant", affiliation: "none", direct_jid: "second@localhost" });
  assert.deepEqual(by("second_joined"), { role: "participant", affiliation: "none", members: ["firstwitch", "secondwitch"] });
  assert.deepEqual(by("on_message", "second"), { nick: "firstwitch", body: "hello from first", type: "groupchat" });
  assert.deepEqual(by("on_message", "first"), { nick: "secondwitch", body: "hello from second", type: "groupchat" });
  assert.deepEqual(by("on_topic_changed", "second"), { topic: "Coven business", nick: "firstwitch", subject: "Coven business" });
  assert.deepEqual(by("on_nick_changed", "first"), { old: "secondwitch", new: "secondwitch2", nick_now: "secondwitch2" });
  assert.deepEqual(by("on_nick_changed", "second"), { old: "secondwitch", new: "secondwitch2", is_me: true, me_now: "secondwitch2" });
  assert.deepEqual(by("role_changed", "second"), { nick: "secondwitch2", role: "visitor", reason: "hush", is_me: true });
  assert.deepEqual(by("role_changed", "first"), { nick: "secondwitch2", role: "visitor", reason: "hush" });
  assert.deepEqual(by("voice_back", "second"), { nick: "secondwitch2", role: "participant" });
  assert.deepEqual(by("members", "first"), { nicks: ["firstwitch", "secondwitch2"], roles: ["firstwitch=moderator", "secondwitch2=participant"] });
  assert.deepEqual(by("owners"), { jids: ["first@localhost"] });
  assert.deepEqual(by("on_exit", "third"), { mode: "KICKED", reason: "out you go", codes: [110, 307], active: false });
  assert.deepEqual(by("on_leave", "second"), { nick: "thirdwitch", mode: "KICKED", reason: "out you go", codes: [307] });
  assert.deepEqual(by("on_leave", "first"), { nick: "thirdwitch", mode: "KICKED", reason: "out you go", codes: [307] });
  assert.deepEqual(by("left", "second"), { mode: "NORMAL", codes: [110], active: false });
  const secondLeft = events.filter((e) => e["event"] === "on_leave" && e["seen_by"] === "first")[1];
  assert.deepEqual(secondLeft, { event: "on_leave", seen_by: "first", nick: "secondwitch2", mode: "NORMAL", codes: [] }, why());
  // The server ends the dropped session and sends the room its unavailable presence: an ordinary leave.
  assert.deepEqual(by("ghost_left"), { mode: "NORMAL", codes: [], members: ["firstwitch"] });
  // The bounce removes the occupant with 333, which aioxmpp reports as LeaveMode.ERROR.
  assert.deepEqual(by("bouncer_left"), { mode: "ERROR", codes: [333], members: ["firstwitch"] });
  by("done");
});
