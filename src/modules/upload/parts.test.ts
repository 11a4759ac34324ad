// The upload module's small parts: byte ranges (RFC 9110 §14.1.2) and the default base of slot URLs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseRange } from "./http.ts";
import { defaultBaseUrl } from "./mod.ts";
import type { HttpListener } from "../../core/http-routes.ts";

test("a single byte range is read in each of its forms; others are ignored or unsatisfiable", () => {
  assert.deepEqual(parseRange("bytes=0-99", 1000), { start: 0, end: 99 });
  assert.deepEqual(parseRange("bytes=900-", 1000), { start: 900, end: 999 });
  assert.deepEqual(parseRange("bytes=-100", 1000), { start: 900, end: 999 });
  assert.deepEqual(parseRange("bytes=-5000", 1000), { start: 0, end: 999 }, "a suffix longer than the file: all of it");
  assert.deepEqual(parseRange("bytes=10-5000", 1000), { start: 10, end: 999 }, "an end past the file is the last byte");
  assert.equal(parseRange("bytes=1000-", 1000), "unsatisfiable");
  assert.equal(parseRange("bytes=-0", 1000), "unsatisfiable");
  assert.equal(parseRange(undefined, 1000), undefined);
  assert.equal(parseRange("bytes=0-1,5-6", 1000), undefined, "several ranges: the whole file");
  assert.equal(parseRange("items=0-1", 1000), undefined);
  assert.equal(parseRange("bytes=9-3", 1000), undefined, "an invalid range is ignored");
  assert.equal(parseRange("bytes=99999999999999999999-", 1000), "unsatisfiable");
});

test("slot URLs name the first listener as bound, or the service's domain when it listens on every address", () => {
  const ctx = (listeners: HttpListener[]) => ({ httpListeners: () => listeners });
  const path = "/upload/upload.example.org";
  assert.equal(defaultBaseUrl(ctx([]), "upload.example.org", path), undefined);
  assert.equal(defaultBaseUrl(ctx([{ secure: true, host: undefined, port: 5281 }, { secure: false, host: "127.0.0.1", port: 5280 }]), "upload.example.org", path), "https://upload.example.org:5281/upload/upload.example.org");
  assert.equal(defaultBaseUrl(ctx([{ secure: true, host: undefined, port: 443 }]), "upload.example.org", path), "https://upload.example.org/upload/upload.example.org");
  assert.equal(defaultBaseUrl(ctx([{ secure: false, host: "::1", port: 8080 }]), "upload.example.org", path), "http://[::1]:8080/upload/upload.example.org");
});
