// XEP-0363 HTTP File Upload over real sockets: a raw XMPP client asks for slots, and Node's fetch (a real HTTP
// client, as a client like profanity uses libcurl) PUTs the file and GETs it back. Covers discovery (§3), slots and
// their errors (§4, §5), what the HTTP side checks on PUT and sends on GET (ranges, validators, the headers that
// keep browsers from running uploads), expiry across a restart, and account deletion.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { closeRawClients, type RawClient } from "../kit/raw-client.ts";
import type { TestServer } from "../kit/server.ts";
import { parseXml } from "../../src/xml/parser.ts";
import { parseJid } from "../../src/xmpp/jid.ts";
import { StanzaError } from "../../src/xmpp/errors.ts";
import type { UploadService } from "../../src/modules/upload/service.ts";
import { UPLOAD, iq, login, requestSlot, uploadServer } from "./kit.ts";

let ts: TestServer;
let juliet: RawClient;
const servers: TestServer[] = [];
before(async () => {
  ts = await uploadServer({ max_file_size: 1_000_000, quota_daily: 3_000_000 });
  servers.push(ts);
  juliet = await login(ts, "juliet", "balcony");
});
after(async () => {
  closeRawClients();
  for (const s of servers) await s.stop().catch(() => {});
});

function slotOrThrow(r: { put: string; get: string } | { error: string }): { put: string; get: string } {
  if ("error" in r) throw new Error(`no slot: ${r.error}`);
  return r;
}

function filesDir(t: TestServer): string {
  return join(t.dataDir, "upload", UPLOAD);
}

test("the host lists the upload service, which says it stores files, speaks XEP-0363 and how large a file may be", async () => {
  const items = await iq(juliet, `<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`);
  assert.match(items, new RegExp(`<item jid='${UPLOAD}'`));
  const info = await iq(juliet, `<iq type='get' to='${UPLOAD}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
  assert.match(info, /<identity category='store' type='file'/);
  assert.match(info, /<feature var='urn:xmpp:http:upload:0'\/>/);
  // XEP-0128 form: FORM_TYPE then max-file-size
  assert.match(info, /<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:http:upload:0<\/value><\/field><field var='max-file-size'><value>1000000<\/value>/);
});

test("a file PUT to its slot is served back to anyone with the GET URL, with validators and safe headers", async () => {
  const body = randomBytes(70_000);
  const slot = slotOrThrow(await requestSlot(juliet, "très cool.jpg", body.length, "image/jpeg"));
  assert.match(slot.get, /^http:\/\/127\.0\.0\.1:\d+\/upload\/upload\.localhost\/[A-Za-z0-9_-]{22}\/tr%C3%A8s%20cool\.jpg$/);
  assert.ok(slot.put.startsWith(`${slot.get}?token=`), "the PUT URL is the GET URL plus its signature");
  // Before the upload, nothing is there.
  assert.equal((await fetch(slot.get)).status, 404);
  const put = await fetch(slot.put, { method: "PUT", body, headers: { "content-type": "image/jpeg" } });
  assert.equal(put.status, 201);
  const got = await fetch(slot.get);
  assert.equal(got.status, 200);
  assert.deepEqual(Buffer.from(await got.arrayBuffer()), body);
  const h = got.headers;
  assert.equal(h.get("content-type"), "image/jpeg");
  assert.equal(h.get("content-length"), String(body.length));
  assert.equal(h.get("x-content-type-options"), "nosniff");
  assert.match(h.get("content-security-policy") ?? "", /default-src 'none'.*sandbox/);
  assert.match(h.get("content-disposition") ?? "", /^inline; .*filename\*=UTF-8''tr%C3%A8s%20cool\.jpg$/);
  assert.equal(h.get("access-control-allow-origin"), "*");
  assert.equal(h.get("accept-ranges"), "bytes");
  const etag = h.get("etag")!;
  const lastModified = h.get("last-modified")!;
  assert.match(etag, /^"[A-Za-z0-9_-]{22}"$/);
  assert.ok(!Number.isNaN(Date.parse(lastModified)));
  // Conditional requests (RFC 9110 §13).
  assert.equal((await fetch(slot.get, { headers: { "if-none-match": etag } })).status, 304);
  assert.equal((await fetch(slot.get, { headers: { "if-modified-since": lastModified } })).status, 304);
  assert.equal((await fetch(slot.get, { headers: { "if-none-match": '"other"' } })).status, 200);
  // Ranges (RFC 9110 §14).
  const part = await fetch(slot.get, { headers: { range: "bytes=100-199" } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get("content-range"), `bytes 100-199/${body.length}`);
  assert.deepEqual(Buffer.from(await part.arrayBuffer()), body.subarray(100, 200));
  const tail = await fetch(slot.get, { headers: { range: "bytes=-10" } });
  assert.deepEqual(Buffer.from(await tail.arrayBuffer()), body.subarray(body.length - 10));
  const open = await fetch(slot.get, { headers: { range: `bytes=${body.length - 5}-` } });
  assert.deepEqual(Buffer.from(await open.arrayBuffer()), body.subarray(body.length - 5));
  const beyond = await fetch(slot.get, { headers: { range: `bytes=${body.length}-` } });
  assert.equal(beyond.status, 416);
  assert.equal(beyond.headers.get("content-range"), `bytes */${body.length}`);
  await beyond.arrayBuffer();
  const stale = await fetch(slot.get, { headers: { range: "bytes=0-9", "if-range": '"other"' } });
  assert.equal(stale.status, 200, "If-Range that does not match: the whole file");
  await stale.arrayBuffer();
  const head = await fetch(slot.get, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-length"), String(body.length));
  // The GET URL with another name, or without a slot, is not found; a second PUT is refused.
  assert.equal((await fetch(slot.get.replace(/[^/]+$/, "other.jpg"))).status, 404);
  const again = await fetch(slot.put, { method: "PUT", body, headers: { "content-type": "image/jpeg" } });
  assert.equal(again.status, 409);
});

test("types a browser would run are served as attachments", async () => {
  for (const [name, type] of [["page.html", "text/html"], ["pic.svg", "image/svg+xml"], ["app.js", "text/javascript"], ["x.xhtml", "application/xhtml+xml"]] as const) {
    const body = Buffer.from(`<script>alert(1)</script> ${name}`);
    const slot = slotOrThrow(await requestSlot(juliet, name, body.length, type));
    assert.equal((await fetch(slot.put, { method: "PUT", body, headers: { "content-type": type } })).status, 201);
    const got = await fetch(slot.get);
    assert.equal(got.headers.get("content-type"), type);
    assert.match(got.headers.get("content-disposition") ?? "", /^attachment; filename="/, name);
    assert.equal(got.headers.get("x-content-type-options"), "nosniff");
    assert.match(got.headers.get("content-security-policy") ?? "", /sandbox/);
    await got.arrayBuffer();
  }
});

test("a PUT must carry the slot's signature, size and type, and arrive before the slot expires", async () => {
  const body = Buffer.from("hello, world\n");
  const slot = slotOrThrow(await requestSlot(juliet, "hello.txt", body.length, "text/plain"));
  const send = (url: string, data: Buffer, type?: string) => fetch(url, { method: "PUT", body: data, headers: type ? { "content-type": type } : {} });
  assert.equal((await send(slot.get, body, "text/plain")).status, 403, "no token");
  assert.equal((await send(`${slot.get}?token=${"A".repeat(43)}`, body, "text/plain")).status, 403, "forged token");
  assert.equal((await send(slot.put.replace(/\/[A-Za-z0-9_-]{22}\//, `/${"B".repeat(22)}/`), body, "text/plain")).status, 403, "another slot id");
  assert.equal((await send(slot.put, Buffer.concat([body, body]), "text/plain")).status, 413, "longer than the slot");
  assert.equal((await send(slot.put, body.subarray(1), "text/plain")).status, 400, "shorter than the slot");
  assert.equal((await send(slot.put, body, "text/html")).status, 400, "another type");
  assert.equal((await send(slot.put, body, "text/plain; charset=utf-8")).status, 201, "the same type with a parameter");
  assert.equal(await (await fetch(slot.get)).text(), body.toString());
  // Slots from another service path, methods other than GET/HEAD/PUT/OPTIONS.
  assert.equal((await fetch(slot.get, { method: "DELETE" })).status, 405);
  const pre = await fetch(slot.get, { method: "OPTIONS", headers: { origin: "https://web.example", "access-control-request-method": "PUT" } });
  assert.equal(pre.status, 204);
  assert.match(pre.headers.get("access-control-allow-methods") ?? "", /PUT/);
  assert.match(pre.headers.get("access-control-allow-headers") ?? "", /content-type/);
});

test("a PUT the client abandons leaves nothing behind, and the slot can be used again", async () => {
  const size = 200_000;
  const slot = slotOrThrow(await requestSlot(juliet, "cut.bin", size));
  const { request } = await import("node:http");
  await new Promise<void>((resolve) => {
    const req = request(slot.put, { method: "PUT", headers: { "content-length": String(size) } });
    req.on("error", () => resolve());
    req.write(randomBytes(50_000), () => setTimeout(() => {
      req.destroy();
      resolve();
    }, 200));
  });
  const deadline = Date.now() + 15_000;
  while (readdirSync(filesDir(ts)).some((f) => f.endsWith(".part")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(readdirSync(filesDir(ts)).filter((f) => f.endsWith(".part")), []);
  const body = randomBytes(size);
  assert.equal((await fetch(slot.put, { method: "PUT", body })).status, 201);
  assert.deepEqual(Buffer.from(await (await fetch(slot.get)).arrayBuffer()), body);
});

test("a request too large gets file-too-large with the limit; a bad request gets bad-request", async () => {
  const r = await requestSlot(juliet, "big.iso", 1_000_001, "application/octet-stream");
  assert.ok("error" in r);
  assert.match(r.error, /type='error'/);
  assert.match(r.error, /<error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'\/>/);
  assert.match(r.error, /<file-too-large xmlns='urn:xmpp:http:upload:0'><max-file-size>1000000<\/max-file-size><\/file-too-large>/);
  for (const bad of [
    `<request xmlns='urn:xmpp:http:upload:0' size='10'/>`,
    `<request xmlns='urn:xmpp:http:upload:0' filename='a.txt'/>`,
    `<request xmlns='urn:xmpp:http:upload:0' filename='a.txt' size='-1'/>`,
    `<request xmlns='urn:xmpp:http:upload:0' filename='a.txt' size='ten'/>`,
    `<request xmlns='urn:xmpp:http:upload:0' filename='/' size='10'/>`,
    `<request xmlns='urn:xmpp:http:upload:0' filename='a.txt' size='10' content-type='not a type'/>`,
  ]) {
    const e = await iq(juliet, `<iq type='get' to='${UPLOAD}'>${bad}</iq>`);
    assert.match(e, /<bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'\/>/, bad);
  }
  // A path in the name is dropped: only the last segment names the file.
  const slot = slotOrThrow(await requestSlot(juliet, "../../etc/passwd", 4));
  assert.match(slot.get, /\/passwd$/);
});

test("the daily quota refuses with resource-constraint and says when to retry", async () => {
  const romeo = await login(ts, "romeo", "montague");
  const first = await requestSlot(romeo, "a.bin", 1_000_000);
  const second = await requestSlot(romeo, "b.bin", 1_000_000);
  const third = await requestSlot(romeo, "c.bin", 1_000_000);
  assert.ok(!("error" in first) && !("error" in second) && !("error" in third));
  const r = await requestSlot(romeo, "d.bin", 1);
  assert.ok("error" in r);
  assert.match(r.error, /<error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'\/>/);
  const stamp = /<retry xmlns='urn:xmpp:http:upload:0' stamp='([^']+)'\/>/.exec(r.error)?.[1];
  assert.ok(stamp, r.error);
  const when = Date.parse(stamp);
  assert.ok(when > Date.now() + 23 * 3600_000 && when < Date.now() + 25 * 3600_000, stamp);
  // Another user's quota is their own.
  assert.ok(!("error" in (await requestSlot(juliet, "e.bin", 1))));
});

test("remote users get not-allowed unless their domain is allowed; messages to the service are refused", async () => {
  const service = ts.server.hosts.get("localhost")!.provided.get("upload") as UploadService;
  const req = parseXml(`<request xmlns='urn:xmpp:http:upload:0' filename='a.txt' size='3'/>`);
  await assert.rejects(service.requestSlot(parseJid("mallory@evil.example/x"), req), (e: unknown) => e instanceof StanzaError && e.condition === "not-allowed" && e.type === "cancel");
  const e = await iq(juliet, `<iq type='set' to='${UPLOAD}'><request xmlns='urn:xmpp:http:upload:0' filename='a.txt' size='3'/></iq>`);
  assert.match(e, /<bad-request /);
  juliet.send(`<message to='${UPLOAD}' id='m1' type='chat'><body>hi</body></message>`);
  await juliet.waitFor(/<message[^>]*type='error'[\s\S]*?<service-unavailable /);
  const ping = await iq(juliet, `<iq type='get' to='${UPLOAD}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  assert.match(ping, /type='result'/);
});

test("remote users from a domain in allow_from get slots", async () => {
  const t = await uploadServer({ allow_from: ["friends.example", "bob@other.example"] });
  servers.push(t);
  const service = t.server.hosts.get("localhost")!.provided.get("upload") as UploadService;
  const req = parseXml(`<request xmlns='urn:xmpp:http:upload:0' filename='a.txt' size='3'/>`);
  const slot = await service.requestSlot(parseJid("anyone@friends.example/x"), req);
  assert.equal(slot.name, "slot");
  await service.requestSlot(parseJid("bob@other.example/x"), req);
  await assert.rejects(service.requestSlot(parseJid("eve@other.example/x"), req), (e: unknown) => e instanceof StanzaError && e.condition === "not-allowed");
  await t.stop();
  servers.splice(servers.indexOf(t), 1);
});

test("files expire: after a restart the sweeper removes what is past expire_after, and GET stops serving it at once", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "comity-upload-"));
  try {
    const a = await uploadServer({ expire_after: 3600 }, { dataDir });
    servers.push(a);
    const c = await login(a, "juliet", "balcony");
    const body = Buffer.from("kept for an hour, then for a second");
    const slot = slotOrThrow(await requestSlot(c, "note.txt", body.length, "text/plain"));
    assert.equal((await fetch(slot.put, { method: "PUT", body, headers: { "content-type": "text/plain" } })).status, 201);
    c.close();
    await a.server.stop(); // not a.stop(): that would remove the data directory
    servers.splice(servers.indexOf(a), 1);
    const id = /\/([A-Za-z0-9_-]{22})\//.exec(slot.get)![1]!;
    assert.ok(existsSync(join(dataDir, "upload", UPLOAD, id)));

    // The same data with a one-second retention: the file is past it as soon as a second has gone by.
    await new Promise((r) => setTimeout(r, 1100));
    const b = await uploadServer({ expire_after: 1 }, { dataDir });
    servers.push(b);
    const url = slot.get.replace(/:\d+\//, `:${b.server.addresses.http[0]!.port}/`);
    const service = b.server.hosts.get("localhost")!.provided.get("upload") as UploadService;
    await service.sweep(); // the start sweep may already have run: either way the file goes
    assert.equal((await fetch(url)).status, 404);
    assert.ok(!existsSync(join(dataDir, "upload", UPLOAD, id)), "the file is deleted");
    assert.equal(await service.store.getSlot(id), undefined, "and its slot document");
    await b.stop();
    servers.splice(servers.indexOf(b), 1);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test("deleting an account deletes its files, whether the event reaches the module or the CLI deleted it meanwhile", async () => {
  await ts.addUser("tybalt@localhost", "capulet");
  await ts.addUser("mercutio@localhost", "queenmab");
  const urls: Record<string, string> = {};
  for (const [user, pw] of [["tybalt", "capulet"], ["mercutio", "queenmab"]] as const) {
    const c = await login(ts, user, pw);
    const body = Buffer.from(`${user}'s file`);
    const slot = slotOrThrow(await requestSlot(c, "mine.txt", body.length, "text/plain"));
    assert.equal((await fetch(slot.put, { method: "PUT", body, headers: { "content-type": "text/plain" } })).status, 201);
    assert.equal((await fetch(slot.get)).status, 200);
    urls[user] = slot.get;
    c.close();
  }
  const idOf = (url: string) => /\/([A-Za-z0-9_-]{22})\//.exec(url)![1]!;
  // The way `comity deluser` does it: storage only, no event.
  await ts.server.storage.accounts.delete("localhost", "tybalt");
  assert.equal((await fetch(urls["tybalt"]!)).status, 404);
  const service = ts.server.hosts.get("localhost")!.provided.get("upload") as UploadService;
  await service.sweep();
  assert.ok(!existsSync(join(filesDir(ts), idOf(urls["tybalt"]!))));
  // The event, when something fires it.
  await ts.server.storage.accounts.delete("localhost", "mercutio");
  await ts.server.events.fire("account/deleted", { host: "localhost", username: "mercutio" });
  assert.ok(!existsSync(join(filesDir(ts), idOf(urls["mercutio"]!))));
  assert.equal(await service.store.getSlot(idOf(urls["mercutio"]!)), undefined);
});

test("a stopping server cuts a download in progress instead of waiting for a slow reader", async () => {
  const t = await uploadServer({ max_file_size: 50_000_000 });
  servers.push(t);
  const c = await login(t, "juliet", "balcony");
  const body = randomBytes(40_000_000);
  const slot = slotOrThrow(await requestSlot(c, "big.bin", body.length));
  assert.equal((await fetch(slot.put, { method: "PUT", body })).status, 201);
  const { request } = await import("node:http");
  // A reader that takes the headers and then reads nothing: the server's socket buffers fill and it must wait.
  const stalled = await new Promise<import("node:http").IncomingMessage>((resolve, reject) => request(slot.get, (res) => {
    res.pause();
    resolve(res);
  }).on("error", reject).end());
  assert.equal(stalled.statusCode, 200);
  const t0 = Date.now();
  await t.stop();
  servers.splice(servers.indexOf(t), 1);
  assert.ok(Date.now() - t0 < 10_000, `stop took ${Date.now() - t0} ms`);
  stalled.destroy();
});
