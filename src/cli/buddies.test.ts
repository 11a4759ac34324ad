// Tests of the `comity buddies` output formatting (DESIGN.md "Operator interface"); the commands themselves are
// exercised against running servers in test/buddies/.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { BuddyEntry } from "../modules/server-buddies/api.ts";
import { cliActor, describeEntry, formatAge, formatAudit, formatBuddies } from "./buddies.ts";

const NOW = 1_700_000_000_000;

function entry(extra: Partial<BuddyEntry>): BuddyEntry {
  return {
    host: "comity.test", peer: "prosody.test", subscription: "none", pendingIn: false, pendingOut: false, preApproved: false,
    peerImplementsServerRosters: null, peerAvailable: null, peerStatus: null, peerPresenceAt: null, since: NOW,
    pendingInSince: null, pendingOutSince: null, decidedBy: null, decidedVia: null, note: null, ...extra,
  };
}

describe("comity buddies output", () => {
  it("formats ages compactly", () => {
    assert.equal(formatAge(4_000), "4s");
    assert.equal(formatAge(5 * 60_000), "5m");
    assert.equal(formatAge(125 * 60_000), "2h 5m");
    assert.equal(formatAge(27 * 3600_000), "1d 3h");
    assert.equal(formatAge(-5), "0s");
  });

  it("shows how long a request has waited and whether the peer implements server rosters", () => {
    const out = formatBuddies(
      [
        entry({ peer: "ejabberd.test", pendingOut: true, pendingOutSince: NOW - 3 * 3600_000, preApproved: true, note: "asked by phone" }),
        entry({ peer: "prosody.test", subscription: "to", peerImplementsServerRosters: false, peerAvailable: true, peerPresenceAt: NOW - 60_000, decidedBy: "cli:root", decidedVia: "cli" }),
        entry({ peer: "spam.test", pendingIn: true, pendingInSince: NOW - 90_000 }),
      ],
      NOW,
    );
    const lines = out.trimEnd().split("\n");
    assert.match(lines[0]!, /^PEER\s+SUBSCRIPTION\s+PENDING\s+PEER IMPLEMENTS XEP-0267/);
    assert.match(lines[1]!, /ejabberd\.test\s+none \(\+pre-approved\)\s+out: waiting for them 3h\s+unknown.*asked by phone/);
    assert.match(lines[2]!, /prosody\.test\s+to\s+-\s+no \(approval may be automatic\)\s+available \(1m ago\)\s+cli:root \(cli\)/);
    assert.match(lines[3]!, /spam\.test\s+none\s+in: waiting for us 1m/);
    assert.equal(formatBuddies([]), "the server roster is empty\n");
  });

  it("adds a HOST column only when several hosts are listed", () => {
    assert.doesNotMatch(formatBuddies([entry({})], NOW), /HOST/);
    assert.match(formatBuddies([entry({}), entry({ host: "other.test" })], NOW), /^HOST\s+PEER/);
  });

  it("formats the audit log and one-line summaries", () => {
    const out = formatAudit([{ id: 2, host: "comity.test", peer: "p.test", action: "approve", actor: "cli:root", via: "cli", detail: "subscribed back", at: NOW }]);
    assert.match(out, /^AT\s+PEER\s+ACTION\s+ACTOR\s+VIA\s+DETAIL\n2023-11-14T22:13:20.000Z\s+p\.test\s+approve\s+cli:root\s+cli\s+subscribed back\n$/);
    assert.equal(formatAudit([]), "no audit records\n");
    assert.match(describeEntry("p.test", entry({ peer: "p.test", pendingOut: true })), /^p\.test: subscription none; our request is pending/);
    assert.equal(describeEntry("p.test", null), "p.test: no longer in the server roster\n");
    assert.match(cliActor(), /^cli:.+/);
  });
});
