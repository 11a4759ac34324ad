// Tests of copySqliteToPostgres (`comity storage copy`): everything arrives, ids continue, a non-empty target is refused.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openSqliteStorage, SQLITE_FILE_NAME } from "../sqlite/store.ts";
import type { ServerRosterEntry, Storage } from "../types.ts";
import { copySqliteToPostgres } from "./copy.ts";
import { openPostgresStorage } from "./store.ts";
import { dropTestSchema, postgresSkip, TEST_POSTGRES_URL, testSchemaName } from "./test-db.ts";

const skip = await postgresSkip();
const H = "montague.lit";

/** Everything a store answers about the data the test writes, for comparing two backends. */
async function snapshot(s: Storage) {
  return {
    accounts: await Promise.all((await s.accounts.list(H)).map((u) => s.accounts.get(H, u))),
    keyval: [await s.keyval("private").get(H, "romeo", "k"), await s.keyval("vcard").get(H, "", "host-doc")],
    roster: await s.rosters.get(H, "romeo"),
    retired: await s.rosters.get(H, "gone"),
    pending: await s.rosters.pendingIn(H, "romeo"),
    offline: await s.offline.list(H, "juliet"),
    serverRoster: await s.serverRoster.list(),
    audit: await s.serverRoster.audit(H),
    incidents: await s.incidents.list(H),
    abuse: await s.abuseReports.list(H),
    counts: await s.abuseReports.counts(H),
    archive: await s.archive.query(H, "romeo", { max: 10 }),
    map: await s.map("pubsub-items").entries(H, "romeo/n"),
    mapOwners: await s.map("pubsub-items").owners(H),
  };
}

describe("copy from SQLite to PostgreSQL", { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), "comity-copy-"));
  const path = join(dir, SQLITE_FILE_NAME);
  const schema = testSchemaName();
  let expected: Awaited<ReturnType<typeof snapshot>>;
  let deletedOfflineId = 0;

  before(async () => {
    const s = openSqliteStorage({ path });
    await s.accounts.createMany(H, ["romeo", "juliet", "Benvolio", "\u{1F3AD}", "gone"].map((u) => ({ username: u, credentials: { scram: {}, plain: `pw-${u}` } })));
    await s.keyval("private").set(H, "romeo", "k", "<query xmlns='jabber:iq:private'>ü</query>");
    await s.keyval("vcard").set(H, "", "host-doc", "");
    await s.rosters.setItem(H, "romeo", { jid: "juliet@capulet.lit", name: "Juliet", subscription: "both", ask: false, approved: true, groups: ["Lovers", ""] });
    await s.rosters.setItem(H, "romeo", { jid: "b@x", subscription: "to", ask: true, approved: false, groups: [] });
    await s.rosters.setItem(H, "gone", { jid: "a@x", subscription: "none", ask: false, approved: false, groups: [] });
    await s.accounts.delete(H, "gone"); // leaves a roster version behind, one past its last roster
    await s.rosters.setPendingIn(H, "romeo", "nurse@capulet.lit", "<presence type='subscribe'/>");
    for (let i = 0; i < 3; i++) await s.offline.push(H, "juliet", `<message n='${i}'/>`, { stamp: 1000.5 + i, quota: 10 });
    const newest = (await s.offline.list(H, "juliet")).at(-1)!;
    deletedOfflineId = newest.id;
    await s.offline.delete(H, "juliet", [newest.id]); // the highest id is gone but must never come back
    const entry: ServerRosterEntry = {
      host: H, peer: "prosody.example", subscription: "both", pendingIn: false, pendingInSince: null, pendingOut: true, pendingOutSince: 5,
      preApproved: true, peerImplementsServerRosters: false, peerAvailable: null, peerStatus: "up", peerPresenceAt: 7, since: 8,
      decidedBy: "admin@montague.lit", decidedVia: "xmpp", note: null,
    };
    await s.serverRoster.update(H, entry.peer, () => ({ entry, audit: { action: "approve", actor: "admin@montague.lit", via: "xmpp", detail: "ok", at: 9 } }));
    await s.serverRoster.appendAudit(H, "ejabberd.example", { action: "note", actor: "cli", via: "cli" });
    await s.incidents.add({ host: H, peer: "p.example", direction: "in", kind: "report", incidentId: "i-1", status: "held", payload: "<Incident/>", at: 11, note: null });
    await s.abuseReports.add({ host: H, account: "romeo@montague.lit", peer: "p.example", reason: "urn:xmpp:reporting:spam", text: "spam", payload: "<report/>", at: 12 });
    await s.archive.append(H, "romeo", { with: "juliet@capulet.lit", direction: "out", stanza: "<message><body>ü</body></message>", timestamp: 1_700_000_000_000 });
    await s.archive.append(H, "romeo", { with: "juliet@capulet.lit", direction: "in", stanza: "<message><body>2</body></message>", timestamp: 1_700_000_000_001 });
    const items = s.map("pubsub-items");
    for (const k of ["a", "b", "c"]) await items.set(H, "romeo/n", k, `<item id='${k}'/>`);
    await items.set(H, "romeo/n", "a", "<item id='a'>again</item>"); // a is now the newest
    await items.set(H, "juliet/n", "x", "y");
    expected = await snapshot(s);
    await s.close();
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await dropTestSchema(schema);
  });

  it("copies every table, and the PostgreSQL store then answers exactly as the SQLite one did", async () => {
    const result = await copySqliteToPostgres({ path }, { url: TEST_POSTGRES_URL, schema });
    assert.equal(result.tables["accounts"], 4);
    assert.equal(result.tables["offline_messages"], 2);
    assert.equal(result.tables["roster_versions"], 2);
    assert.equal(result.tables["archive_messages"], 2, "message archives move too");
    assert.equal(result.tables["map_entries"], 4, "the generic map kind moves too");
    const s = await openPostgresStorage({ url: TEST_POSTGRES_URL, schema });
    try {
      assert.deepEqual(await snapshot(s), expected);
      assert.equal(expected.retired.version, 2, "the deleted account's version was carried over");
      // Sequences continue past every id SQLite handed out, including a deleted newest one.
      assert.equal(await s.offline.push(H, "juliet", "<message n='new'/>", { stamp: 1, quota: 10 }), true);
      assert.ok((await s.offline.list(H, "juliet")).at(-1)!.id > deletedOfflineId);
      const audit = await s.serverRoster.appendAudit(H, "x.example", { action: "a", actor: "b", via: "c" });
      assert.ok(audit > Math.max(...expected.audit.map((a) => a.id)));
      // A write after the copy still becomes its owner's newest entry.
      await s.map("pubsub-items").set(H, "romeo/n", "d", "d");
      assert.deepEqual(await s.map("pubsub-items").keys(H, "romeo/n"), ["b", "c", "a", "d"]);
      assert.ok((await s.incidents.add({ ...expected.incidents[0]!, id: undefined } as never)).id > expected.incidents[0]!.id);
    } finally {
      await s.close();
    }
  });

  it("refuses to copy into a schema that already holds data, changing nothing", async () => {
    await assert.rejects(copySqliteToPostgres({ path }, { url: TEST_POSTGRES_URL, schema }), (err: unknown) => {
      assert.equal((err as { code?: string }).code, "COMITY_ERR_STORAGE_INVALID");
      assert.match((err as Error).message, /empty/);
      return true;
    });
    const s = await openPostgresStorage({ url: TEST_POSTGRES_URL, schema });
    try {
      assert.equal(await s.accounts.count(H), 4);
    } finally {
      await s.close();
    }
  });
});
