// A real bridge through XEP-0114: Debian's Biboumi (the XMPP–IRC gateway) connects to Comity's component listener
// and to a local ngIRCd, both started here on loopback with ports chosen at run time and config files in a temp
// dir. An XMPP user joins an IRC channel through Comity and exchanges messages with an IRC user (a raw IRC client
// in this file), both ways; `comity status` (over the control socket) shows the bridge connected.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestServer, type TestServer } from "../kit/server.ts";
import { RawClient } from "../kit/raw-client.ts";
import { callControl } from "../../src/admin/control.ts";
import { formatStatus } from "../../src/cli/status.ts";
import type { ServerStatus } from "../../src/server.ts";

const BIBOUMI = "/usr/bin/biboumi";
const NGIRCD = "/usr/sbin/ngircd";
const missing = [BIBOUMI, NGIRCD].filter((p) => !existsSync(p));
const skip = missing.length > 0 && process.env["CI"] !== "true" ? `${missing.join(", ")} not installed (scripts/install-test-deps.sh installs Debian's biboumi and ngircd)` : false;

const DOMAIN = "irc.localhost";
const SECRET = "biboumi-test-secret-0f3a9c";
/** The IRC server as Biboumi addresses it: `#chan%<server>@<gateway domain>`. */
const IRC_SERVER = "127.0.0.1";
const CHANNEL = "#comity";
const ROOM = `${CHANNEL}%${IRC_SERVER}@${DOMAIN}`;
const WAIT = 60_000;

/** Everything started here, stopped in `after` (never daemonised). */
const procs = new Set<ChildProcess>();
let dir: string;
let ts: TestServer;
let ircPort: number;
const output: Record<string, string> = { ngircd: "", biboumi: "" };

/** A port nobody listens on right now (bound on 127.0.0.1 port 0, then released). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function start(name: "ngircd" | "biboumi", cmd: string, args: string[]): ChildProcess {
  const p = spawn(cmd, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  procs.add(p);
  const keep = (d: Buffer) => {
    output[name] = (output[name] + d.toString("utf8")).slice(-20_000); // bounded: only the tail matters in a report
  };
  p.stdout!.on("data", keep);
  p.stderr!.on("data", keep);
  p.once("exit", () => procs.delete(p));
  p.once("error", (err) => {
    output[name] += `\n[spawn failed: ${err.message}]`;
    procs.delete(p);
  });
  return p;
}

/** Poll until `check` holds; returns as soon as it does. */
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = WAIT): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}\n--- ngircd ---\n${output["ngircd"]}\n--- biboumi ---\n${output["biboumi"]}`);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** A minimal IRC client (RFC 2812 lines): registers, answers PING, keeps what it read. */
class IrcClient {
  readonly socket: Socket;
  buffer = "";
  closed = false;

  constructor(port: number, nick: string) {
    this.socket = connect({ host: "127.0.0.1", port });
    this.socket.setEncoding("utf8");
    let partial = "";
    this.socket.on("data", (d: string) => {
      partial += d;
      let i: number;
      while ((i = partial.indexOf("\n")) >= 0) {
        const line = partial.slice(0, i).replace(/\r$/, "");
        partial = partial.slice(i + 1);
        if (line.startsWith("PING ")) this.send(`PONG ${line.slice(5)}`);
        this.buffer += `${line}\n`;
      }
      if (this.buffer.length > 200_000) this.buffer = this.buffer.slice(-100_000);
    });
    this.socket.on("close", () => (this.closed = true));
    this.socket.on("error", () => {});
    this.send(`NICK ${nick}`);
    this.send(`USER ${nick} 0 * :${nick} on IRC`);
  }

  send(line: string): void {
    this.socket.write(`${line}\r\n`);
  }

  async waitFor(re: RegExp, timeoutMs = WAIT): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.buffer.match(re);
      if (m) return m;
      if (this.closed) throw new Error(`IRC connection closed before ${re}; got:\n${this.buffer}`);
      if (Date.now() > deadline) throw new Error(`timeout waiting for ${re} on IRC; got:\n${this.buffer}\n--- biboumi ---\n${output["biboumi"]}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

before(async () => {
  if (skip) return;
  // Under CI=true a missing bridge is a failure, said plainly rather than as a spawn error.
  if (missing.length > 0) throw new Error(`${missing.join(", ")} not installed: run scripts/install-test-deps.sh`);
  dir = mkdtempSync(join(tmpdir(), "comity-biboumi-"));
  ircPort = await freePort();
  // ngIRCd in the foreground (-n), on loopback only, no ident/DNS/PAM lookups that would slow registration.
  writeFileSync(
    join(dir, "ngircd.conf"),
    [
      "[Global]",
      "Name = irc.test",
      "Info = Comity test IRC server",
      "Listen = 127.0.0.1",
      `Ports = ${ircPort}`,
      "MotdPhrase = comity test",
      "[Options]",
      "Ident = no",
      "PAM = no",
      "DNS = no",
      "RequireAuthPing = no",
      "",
    ].join("\n"),
  );
  start("ngircd", NGIRCD, ["-n", "-f", join(dir, "ngircd.conf")]);
  await until("ngircd to listen", () => accepts(ircPort));

  ts = await createTestServer(
    { components: { listen: ["127.0.0.1:0"], services: [{ domain: DOMAIN, secret: SECRET }] } },
    { users: { "alice@localhost": "pw-alice" } },
  );
  const componentPort = ts.server.addresses.components[0]!.port;
  // Biboumi's own config: the gateway domain and secret Comity knows, Comity's component port, its database in the
  // temp dir, no identd (port 0), logs to stdout (no log_file), and policies read from the temp dir.
  writeFileSync(
    join(dir, "biboumi.cfg"),
    [
      `hostname=${DOMAIN}`,
      `password=${SECRET}`,
      "xmpp_server_ip=127.0.0.1",
      `port=${componentPort}`,
      `db_name=${join(dir, "biboumi.sqlite")}`,
      "identd_port=0",
      "log_level=0",
      `policy_directory=${dir}`,
      "realname_customization=true",
      "",
    ].join("\n"),
  );
  start("biboumi", BIBOUMI, [join(dir, "biboumi.cfg")]);
  await until("biboumi to connect to Comity", () => ts.server.components.list().some((c) => c.domain === DOMAIN && c.connected));
});

after(async () => {
  await ts?.stop();
  for (const p of procs) p.kill("SIGTERM");
  const deadline = Date.now() + 5000;
  while (procs.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const p of procs) p.kill("SIGKILL");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("Biboumi connects as a component and comity status shows it", { skip }, async () => {
  const status = (await callControl(ts.config.control_socket!, "status")) as ServerStatus;
  const bridge = status.components.find((c) => c.domain === DOMAIN);
  assert.ok(bridge?.connected, JSON.stringify(status.components));
  assert.equal(bridge.host, "localhost");
  const line = new RegExp(`component ${escape(DOMAIN)}\\s+connected since \\S+ from 127\\.0\\.0\\.1 \\(host localhost; \\d+ stanzas in, \\d+ out\\)`);
  assert.match(formatStatus(status), line);
  // The command itself, as an operator runs it: a config file that names the running server's control socket.
  const file = join(dir, "comity.yaml");
  writeFileSync(file, `hosts: [{domain: localhost}]\ndata_dir: ${JSON.stringify(ts.dataDir)}\ncontrol_socket: ${JSON.stringify(ts.config.control_socket)}\n`);
  const cli = spawn(process.execPath, ["--import", "tsx", "src/cli/run.ts", "status", "--config", file], { stdio: ["ignore", "pipe", "pipe"] });
  procs.add(cli);
  let out = "";
  cli.stdout!.on("data", (d: Buffer) => (out += d.toString("utf8")));
  cli.stderr!.on("data", (d: Buffer) => (out += d.toString("utf8")));
  const code = await new Promise<number | null>((resolve) => cli.once("exit", resolve));
  procs.delete(cli);
  assert.equal(code, 0, out);
  assert.match(out, line);
});

test("an XMPP user joins an IRC channel through Comity and Biboumi, and messages flow both ways", { skip }, async () => {
  const { client: alice } = await RawClient.login(ts.c2sPort, "alice", "pw-alice", "laptop");
  alice.send("<presence/>");
  await alice.sync();

  // Biboumi's disco comes from Biboumi (Comity only routes): it names itself a gateway.
  alice.send(`<iq type='get' to='${DOMAIN}' id='disco1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
  await alice.waitFor(/<iq[^>]*id='disco1'[\s\S]*?<identity[^>]*category='conference'[\s\S]*?<\/iq>/, WAIT);

  // ngIRCd listens on a port chosen at run time: tell Biboumi with its per-server ad-hoc command (XEP-0050),
  // plaintext ports only (no TLS ports to try first).
  const serverJid = `${IRC_SERVER}@${DOMAIN}`;
  alice.send(`<iq type='set' to='${serverJid}' id='cfg1'><command xmlns='http://jabber.org/protocol/commands' node='configure' action='execute'/></iq>`);
  const form = await alice.waitFor(/<iq[^>]*id='cfg1'[\s\S]*?<\/iq>/, WAIT);
  const session = /sessionid='([^']+)'/.exec(form[0])?.[1] ?? /sessionid="([^"]+)"/.exec(form[0])?.[1];
  assert.ok(session, `no ad-hoc session in ${form[0]}`);
  assert.match(form[0], /var='ports'|var="ports"/);
  alice.send(
    `<iq type='set' to='${serverJid}' id='cfg2'><command xmlns='http://jabber.org/protocol/commands' node='configure' sessionid='${session}'>` +
      `<x xmlns='jabber:x:data' type='submit'><field var='ports'><value>${ircPort}</value></field><field var='tls_ports'/></x></command></iq>`,
  );
  await alice.waitFor(/<iq[^>]*id='cfg2'[\s\S]*?status=['"]completed['"]/, WAIT);

  // Join the channel as a group chat (XEP-0045 §7.2): Biboumi connects to ngIRCd and answers with our own presence.
  alice.buffer = "";
  alice.send(`<presence to='${ROOM}/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>`);
  await alice.waitFor(new RegExp(`<presence[^>]*from='${escape(ROOM)}/alice'[\\s\\S]*?status code=['"]110['"]`), WAIT);

  // An IRC user joins the same channel on ngIRCd and sees alice there.
  const bob = new IrcClient(ircPort, "bob");
  await bob.waitFor(/ 001 bob /);
  bob.send(`JOIN ${CHANNEL}`);
  await bob.waitFor(new RegExp(` 353 bob [=*@] ${CHANNEL} :[^\\n]*\\balice\\b`));
  await alice.waitFor(new RegExp(`<presence[^>]*from='${escape(ROOM)}/bob'`), WAIT);

  // IRC → XMPP.
  bob.send(`PRIVMSG ${CHANNEL} :hello from IRC`);
  await alice.waitFor(new RegExp(`<message[^>]*from='${escape(ROOM)}/bob'[^>]*>[\\s\\S]*?<body>hello from IRC</body>`), WAIT);
  assert.match(alice.buffer, /type='groupchat'/);

  // XMPP → IRC.
  alice.send(`<message to='${ROOM}' type='groupchat' id='g1'><body>hello from XMPP</body></message>`);
  await bob.waitFor(new RegExp(`^:alice![^ ]* PRIVMSG ${CHANNEL} :hello from XMPP$`, "m"));

  // The bridge really went through Comity's component stream both ways.
  const bridge = ts.server.status().components.find((c) => c.domain === DOMAIN)!;
  assert.ok(bridge.stanzasIn >= 3 && bridge.stanzasOut >= 3, JSON.stringify(bridge));
  bob.send("QUIT :done");
  alice.close();
});

/** A JID for use inside a RegExp. */
function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
