// XEP-0045 with a real client library: slixmpp 1.8.3's xep_0045 plugin (join_muc_wait, set_subject, groupchat
// messages). One user creates an instant room and talks; a second joins asking for two history messages, gets them
// with delay stamps and the subject, and the two exchange groupchat messages; then the second pages through the room's
// XEP-0313 archive with slixmpp's xep_0313 plugin and finds the live message's XEP-0359 stanza id there.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createTestServer, type TestServer } from "../kit/server.ts";

const PY = "/usr/bin/python3";
const SCRIPT = "test/muc/slixmpp_muc.py";
const ROOM = "interop@conference.localhost";
/** Scripts still running, killed in `after` so a failed test leaves none behind. */
const live = new Set<ChildProcess>();

let ts: TestServer;
before(async () => {
  ts = await createTestServer(
    { hosts: [{ domain: "localhost", muc: { domain: "conference.localhost" } }] },
    { users: { "sam@localhost": "pw-sam", "tess@localhost": "pw-tess" } },
  );
});
after(async () => {
  for (const p of live) p.kill("SIGKILL");
  await ts?.stop();
});

interface Run {
  code: number | null;
  events: Record<string, unknown>[];
  stderr: string;
}

/** Start one slixmpp role; `ready` resolves when it prints the event named so. */
function role(jid: string, password: string, r: string, nick: string, extra: string[] = []): { done: Promise<Run>; ready: Promise<void> } {
  let readyResolve!: () => void;
  const ready = new Promise<void>((res) => (readyResolve = res));
  const done = new Promise<Run>((resolve, reject) => {
    const p = spawn(PY, [SCRIPT, "--port", String(ts.c2sPort), "--jid", jid, "--password", password, "--role", r, "--room", ROOM, "--nick", nick, "--timeout", "45", ...extra]);
    live.add(p);
    p.on("exit", () => live.delete(p));
    let out = "";
    let err = "";
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes('"event": "ready"')) readyResolve();
    });
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    p.on("error", reject);
    p.on("exit", (code) => {
      if (/No module named 'slixmpp'/.test(err)) reject(new Error("python3-slixmpp is not installed: run scripts/install-test-deps.sh"));
      resolve({ code, events: out.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>), stderr: err });
    });
  });
  return { done, ready };
}

test("slixmpp users create a room, get history and the subject on joining, and chat", { timeout: 150_000 }, async () => {
  const owner = role("sam@localhost/o", "pw-sam", "owner", "Sam", ["--count", "3"]);
  await Promise.race([owner.ready, owner.done.then((r) => assert.fail(`the owner ended early: ${JSON.stringify(r.events)} ${r.stderr.slice(-2000)}`))]);
  const member = role("tess@localhost/m", "pw-tess", "member", "Tess", ["--count", "2"]);
  const [o, m] = await Promise.all([owner.done, member.done]);
  assert.equal(o.code, 0, `${JSON.stringify(o.events)}\n${o.stderr.slice(-2000)}`);
  assert.equal(m.code, 0, `${JSON.stringify(m.events)}\n${m.stderr.slice(-2000)}`);

  assert.deepEqual(o.events.find((e) => e["event"] === "joined"), { event: "joined", codes: [110, 201], role: "moderator", affiliation: "owner" });
  assert.ok(o.events.some((e) => e["event"] === "configured"));
  assert.deepEqual(m.events.find((e) => e["event"] === "joined"), { event: "joined", codes: [110], role: "participant", affiliation: "none" });
  assert.deepEqual(m.events.find((e) => e["event"] === "occupants"), { event: "occupants", nicks: ["Sam", "Tess"] }, "the plugin counts itself in");
  const history = m.events.find((e) => e["event"] === "history") as { bodies: string[]; stamps: string[]; froms: string[] };
  assert.deepEqual(history.bodies, ["history 2", "history 3"], "the last two, oldest first (<history maxstanzas='2'/>)");
  assert.deepEqual(history.froms, [`${ROOM}/Sam`, `${ROOM}/Sam`]);
  for (const s of history.stamps) assert.match(s, /^\d{4}-\d\d-\d\d/, "XEP-0203 stamps");
  assert.deepEqual(m.events.find((e) => e["event"] === "subject"), { event: "subject", subject: "Interop", frm: `${ROOM}/Sam` });
  assert.deepEqual(o.events.find((e) => e["event"] === "message"), { event: "message", frm: `${ROOM}/Tess`, body: "hello from Tess" });
  assert.deepEqual(m.events.find((e) => e["event"] === "message"), { event: "message", frm: `${ROOM}/Sam`, body: "welcome Tess" });

  const archive = m.events.find((e) => e["event"] === "archive") as { bodies: string[]; ids: string[]; froms: string[]; live_id: { id: string; by: string } | null };
  assert.ok(archive, `no archive event: ${JSON.stringify(m.events)}`);
  // The subject change has no body: slixmpp gives "" for it.
  assert.deepEqual(archive.bodies, ["", "history 1", "history 2", "history 3", "hello from Tess", "welcome Tess"]);
  assert.equal(archive.froms[4], `${ROOM}/Tess`);
  assert.equal(archive.live_id?.by, ROOM, "the live message carries the room's stanza id");
  assert.equal(archive.ids.at(-1), archive.live_id?.id, "the same id as in the archive");
});
