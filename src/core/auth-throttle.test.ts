// The authentication throttle: free failures, exponential delay, forgetting, per-network keys, and forgiveness
// limited to the account that succeeded.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AuthThrottle, networkOf } from "./auth-throttle.ts";

test("networks: IPv4 as is, IPv4-mapped as IPv4, IPv6 by /64 whatever the spelling", () => {
  assert.equal(networkOf("192.0.2.7"), "192.0.2.7");
  assert.equal(networkOf("::ffff:192.0.2.7"), "192.0.2.7");
  assert.equal(networkOf("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  assert.equal(networkOf("2001:0db8:0001:0002:bbbb:cccc:dddd:eeee"), "2001:db8:1:2::/64");
  assert.equal(networkOf("2001:db8::1"), "2001:db8:0:0::/64");
  assert.equal(networkOf("::1"), "0:0:0:0::/64");
  assert.equal(networkOf("fe80::1%eth0"), "fe80:0:0:0::/64");
});

test("three failures are free, then the delay doubles up to 30 s, and a quiet period forgets", () => {
  const t = new AuthThrottle({ baseDelayMs: 1000, forgetMs: 60_000 });
  const at = (n: number) => ({ user: "u", now: n });
  assert.deepEqual([t.failure("198.51.100.1", at(0)), t.failure("198.51.100.1", at(1)), t.failure("198.51.100.1", at(2))], [0, 0, 0]);
  assert.equal(t.failure("198.51.100.1", at(3)), 1000);
  assert.equal(t.failure("198.51.100.1", at(4)), 2000);
  for (let i = 0; i < 20; i++) t.failure("198.51.100.1", at(5 + i));
  assert.equal(t.delay("198.51.100.1", 30), 30_000);
  assert.equal(t.delay("198.51.100.1", 30 + 60_001), 0);
});

test("a success forgives that account's own failures only: guesses at another account stay counted", () => {
  const t = new AuthThrottle({ baseDelayMs: 1000 });
  // Mallory guesses Alice's password twice, logs in to her own account, and again: the guesses keep adding up.
  for (let round = 0; round < 5; round++) {
    t.failure("203.0.113.9", { user: "alice" });
    t.failure("203.0.113.9", { user: "alice" });
    t.success("203.0.113.9", "mallory");
  }
  assert.ok(t.delay("203.0.113.9") > 0, "ten guesses at alice are throttled despite mallory's logins");
  // Bob mistypes twice and then gets it right: his own failures are forgiven.
  const u = new AuthThrottle({ baseDelayMs: 1000 });
  for (let i = 0; i < 4; i++) u.failure("198.51.100.2", { user: "bob" });
  assert.ok(u.delay("198.51.100.2") > 0);
  u.success("198.51.100.2", "bob");
  assert.equal(u.delay("198.51.100.2"), 0);
});

test("addresses of one IPv6 /64 share their failures", () => {
  const t = new AuthThrottle({ baseDelayMs: 1000 });
  for (let i = 1; i <= 5; i++) t.failure(`2001:db8:5:6::${i.toString(16)}`, { user: "alice" });
  assert.ok(t.delay("2001:db8:5:6:ffff::1") > 0);
  assert.equal(t.delay("2001:db8:5:7::1"), 0, "the next /64 is someone else");
});
