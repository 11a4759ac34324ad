// `comity check` and XEP-0363: the host named in slot URLs must resolve, or clients cannot upload or download.
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkDns, type DnsResolver } from "../../src/cli/check.ts";
import { parseConfig } from "../../src/core/config/load.ts";

function resolver(a: Record<string, string[]>): DnsResolver {
  const notFound = () => Object.assign(new Error("not found"), { code: "ENOTFOUND" });
  return {
    resolveSrv: async () => {
      throw notFound();
    },
    resolve4: async (name) => {
      const r = a[name];
      if (r === undefined) throw notFound();
      return r;
    },
    resolve6: async () => {
      throw notFound();
    },
  };
}

test("the DNS check wants an address for the upload URLs' host: the upload domain, or the configured url's", async () => {
  const base = "c2s: {direct_tls: []}\ns2s: {listen: []}\n";
  const onAll = parseConfig(`${base}http: {tls_listen: ["0.0.0.0:5281"]}\nhosts: [{domain: good.org, upload: {domain: upload.good.org}}, {domain: two.org, upload: {domain: files.two.org}}]\n`);
  const found = await checkDns(onAll, resolver({ "upload.good.org": ["192.0.2.1"] }));
  const of = (host: string) => found.filter((f) => f.host === host).map((f) => [f.severity, f.message]);
  assert.deepEqual(of("upload.good.org"), [["ok", "upload.good.org (file upload URLs) → 192.0.2.1"]]);
  assert.deepEqual(of("files.two.org").map(([s]) => s), ["error"]);
  assert.match(String(of("files.two.org")[0]![1]), /no A\/AAAA record for files\.two\.org/);
  // With url, its host is what clients need; a loopback listener without url is a proxy's business, not checked.
  const proxied = parseConfig(`${base}http: {listen: ["127.0.0.1:5280"]}\nhosts: [{domain: good.org, upload: {domain: upload.good.org, url: "https://cdn.good.org/files"}}, {domain: two.org, upload: {domain: files.two.org}}]\n`);
  const found2 = await checkDns(proxied, resolver({ "cdn.good.org": ["192.0.2.9"] }));
  assert.deepEqual(found2.filter((f) => f.host === "upload.good.org").map((f) => f.message), ["cdn.good.org (file upload URLs) → 192.0.2.9"]);
  assert.deepEqual(found2.filter((f) => f.host === "files.two.org"), []);
});
