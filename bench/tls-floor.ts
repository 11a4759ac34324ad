// The TLS floor: a measuring instrument, not a server. It does the least a Node.js process must do to
// satisfy bench/tls-load.ts over STARTTLS, so that its figures are what TLS plus one Node process cost on
// this machine before any XMPP work (the plaintext harness has the same idea without TLS).
//
//   node tls-floor.js --port 35822 --domain bench.test --cert cert.pem --key key.pem
//
// What it does, and nothing more:
//  - listens on 127.0.0.1 (TCP_NODELAY, backlog 1024), offers STARTTLS as required, then upgrades the socket;
//  - after TLS, offers SASL PLAIN and accepts any credentials (the user name is taken from the token);
//  - after the restart, binds the requested resource (or a generated one);
//  - answers every iq get/set with an empty result, ignores presence;
//  - forwards each <message to='FULL JID'> to the session bound to that JID, with from='sender' added.
// Elements are found by string search on the latin1 text: an element ends at its first '>' when that is
// '/>', otherwise at the first '</name>'. No XML parser, no escaping, no limits: unsafe by design.
import net from "node:net";
import tls from "node:tls";
import { readFileSync } from "node:fs";

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ""), process.argv[i + 1] ?? "");
const PORT = Number(args.get("port") ?? 35822);
const HOST = args.get("host") ?? "127.0.0.1";
const DOMAIN = args.get("domain") ?? "bench.test";
if (PORT < 35000 || PORT > 35999) {
  console.error("the port must be in 35000-35999");
  process.exit(2);
}
const context = tls.createSecureContext({
  cert: readFileSync(args.get("cert") ?? "cert.pem"),
  key: readFileSync(args.get("key") ?? "key.pem"),
  minVersion: "TLSv1.2",
});

const NS_STREAM = "http://etherx.jabber.org/streams";
const NAME_END = new Set([32, 9, 10, 13, 47, 62]); // space, tab, LF, CR, '/', '>'
const bound = new Map<string, Session>();
let streamSeq = 0;

class Session {
  sock: net.Socket;
  buf = "";
  secure = false;
  authenticated = false;
  user = "";
  jid = "";

  constructor(raw: net.Socket) {
    this.sock = raw;
    raw.setNoDelay(true);
    raw.setEncoding("latin1");
    raw.on("data", this.#onData);
    raw.on("error", () => raw.destroy());
    raw.on("close", this.#gone);
  }

  #gone = () => {
    if (this.jid && bound.get(this.jid) === this) bound.delete(this.jid);
  };

  #onData = (d: string) => {
    const b = this.buf + d;
    let pos = 0;
    for (;;) {
      const lt = b.indexOf("<", pos);
      if (lt < 0) {
        pos = b.length;
        break;
      }
      const gt = b.indexOf(">", lt);
      if (gt < 0) {
        pos = lt;
        break;
      }
      const c1 = b.charCodeAt(lt + 1);
      if (c1 === 63 /* ? */) {
        pos = gt + 1; // XML declaration
        continue;
      }
      if (c1 === 47 /* / */) {
        this.sock.end("</stream:stream>"); // only </stream:stream> can close at top level
        this.buf = "";
        return;
      }
      let nameEnd = lt + 1;
      while (!NAME_END.has(b.charCodeAt(nameEnd))) nameEnd++; // gt is one of them, so this stops
      const name = b.slice(lt + 1, nameEnd);
      if (name === "stream:stream") {
        pos = gt + 1;
        this.#openStream();
        continue;
      }
      let end: number;
      if (b.charCodeAt(gt - 1) === 47 /* / */) end = gt + 1;
      else {
        const close = b.indexOf(`</${name}>`, gt);
        if (close < 0) {
          pos = lt;
          break;
        }
        end = close + name.length + 3;
      }
      pos = end;
      if (name === "starttls" && !this.secure) {
        this.buf = "";
        this.#upgrade();
        return; // the client sends nothing more in clear text
      }
      this.#stanza(b, name, lt, gt, end);
    }
    this.buf = pos < b.length ? b.slice(pos) : "";
  };

  #openStream(): void {
    let features: string;
    if (!this.secure) features = `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>`;
    else if (!this.authenticated) features = `<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>`;
    else features = `<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>`;
    this.sock.write(
      `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='${NS_STREAM}' id='s${++streamSeq}' from='${DOMAIN}' version='1.0'>` +
        `<stream:features>${features}</stream:features>`,
    );
  }

  #upgrade(): void {
    const raw = this.sock;
    raw.write(`<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
    raw.off("data", this.#onData);
    raw.off("close", this.#gone);
    const t = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
    t.setEncoding("latin1");
    t.on("data", this.#onData);
    t.on("error", () => t.destroy());
    t.on("close", this.#gone);
    this.sock = t;
    this.secure = true;
  }

  #stanza(b: string, name: string, lt: number, gt: number, end: number): void {
    switch (name) {
      case "message": {
        const to = attribute(b, "to", lt, gt);
        const target = to ? bound.get(to) : undefined;
        if (target) target.sock.write(`<message from='${this.jid}'${b.slice(lt + 8, end)}`);
        return;
      }
      case "iq": {
        const type = attribute(b, "type", lt, gt);
        if (type !== "get" && type !== "set") return;
        const id = attribute(b, "id", lt, gt) ?? "";
        const bind = b.indexOf("urn:ietf:params:xml:ns:xmpp-bind", gt);
        if (bind >= 0 && bind < end) {
          const r = b.indexOf("<resource>", gt);
          const resource = r > 0 && r < end ? b.slice(r + 10, b.indexOf("</resource>", r)) : `floor${streamSeq}`;
          this.jid = `${this.user}@${DOMAIN}/${resource}`;
          bound.set(this.jid, this);
          this.sock.write(`<iq type='result' id='${id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>${this.jid}</jid></bind></iq>`);
        } else this.sock.write(`<iq type='result' id='${id}' from='${DOMAIN}' to='${this.jid}'/>`);
        return;
      }
      case "auth": {
        const token = b.slice(gt + 1, end - 7);
        this.user = Buffer.from(token, "base64").toString("latin1").split("\0")[1] ?? "anonymous";
        this.authenticated = true;
        this.sock.write(`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`);
        return;
      }
      default:
        return; // presence and anything else
    }
  }
}

/** Value of attribute `name` in the start tag b[lt..gt], either quote style; no entity decoding. */
function attribute(b: string, name: string, lt: number, gt: number): string | null {
  let at = lt;
  for (;;) {
    at = b.indexOf(` ${name}=`, at);
    if (at < 0 || at > gt) return null;
    const q = b[at + name.length + 2];
    if (q === "'" || q === '"') {
      const start = at + name.length + 3;
      return b.slice(start, b.indexOf(q, start));
    }
    at += name.length + 2;
  }
}

const server = net.createServer({ noDelay: true }, (raw) => new Session(raw));
server.listen({ host: HOST, port: PORT, backlog: 1024 }, () => console.log(`tls-floor ready on ${HOST}:${PORT}`));
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
