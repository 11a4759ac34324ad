// Table-driven tests of RFC 6121 Appendix A.2 (outbound) and A.3 (inbound), one case per row, plus §3.4 pre-approval.
import { test } from "node:test";
import assert from "node:assert/strict";
import { inbound, outbound, parseStateName, stateName, type SubscriptionType } from "./subscription.ts";

/** [existing state, route/deliver?, new state ("" = no state change)], in the RFC's row order. */
type Row = [string, boolean, string];
const STATES = ["None", "None + Pending Out", "None + Pending In", "None + Pending Out/In", "To", "To + Pending In", "From", "From + Pending Out", "Both"];

const OUTBOUND: Record<SubscriptionType, Row[]> = {
  // A.2.1
  subscribe: [
    ["None", true, "None + Pending Out"],
    ["None + Pending Out", true, ""],
    ["None + Pending In", true, "None + Pending Out/In"],
    ["None + Pending Out/In", true, ""],
    ["To", true, ""],
    ["To + Pending In", true, ""],
    ["From", true, "From + Pending Out"],
    ["From + Pending Out", true, ""],
    ["Both", true, ""],
  ],
  // A.2.2
  unsubscribe: [
    ["None", true, ""],
    ["None + Pending Out", true, "None"],
    ["None + Pending In", true, ""],
    ["None + Pending Out/In", true, "None + Pending In"],
    ["To", true, "None"],
    ["To + Pending In", true, "None + Pending In"],
    ["From", true, ""],
    ["From + Pending Out", true, "From"],
    ["Both", true, "From"],
  ],
  // A.2.3 (rows without routing record a pre-approval where §3.4 allows one; tested below)
  subscribed: [
    ["None", false, ""],
    ["None + Pending Out", false, ""],
    ["None + Pending In", true, "From"],
    ["None + Pending Out/In", true, "From + Pending Out"],
    ["To", false, ""],
    ["To + Pending In", true, "Both"],
    ["From", false, ""],
    ["From + Pending Out", false, ""],
    ["Both", false, ""],
  ],
  // A.2.4
  unsubscribed: [
    ["None", false, ""],
    ["None + Pending Out", false, ""],
    ["None + Pending In", true, "None"],
    ["None + Pending Out/In", true, "None + Pending Out"],
    ["To", false, ""],
    ["To + Pending In", true, "To"],
    ["From", true, "None"],
    ["From + Pending Out", true, "None + Pending Out"],
    ["Both", true, "To"],
  ],
};

const INBOUND: Record<SubscriptionType, Row[]> = {
  // A.3.1 (the three rows with 'from' are answered with `subscribed`, tested below)
  subscribe: [
    ["None", true, "None + Pending In"],
    ["None + Pending Out", true, "None + Pending Out/In"],
    ["None + Pending In", false, ""],
    ["None + Pending Out/In", false, ""],
    ["To", true, "To + Pending In"],
    ["To + Pending In", false, ""],
    ["From", false, ""],
    ["From + Pending Out", false, ""],
    ["Both", false, ""],
  ],
  // A.3.2
  unsubscribe: [
    ["None", false, ""],
    ["None + Pending Out", false, ""],
    ["None + Pending In", true, "None"],
    ["None + Pending Out/In", true, "None + Pending Out"],
    ["To", false, ""],
    ["To + Pending In", true, "To"],
    ["From", true, "None"],
    ["From + Pending Out", true, "None + Pending Out"],
    ["Both", true, "To"],
  ],
  // A.3.3
  subscribed: [
    ["None", false, ""],
    ["None + Pending Out", true, "To"],
    ["None + Pending In", false, ""],
    ["None + Pending Out/In", true, "To + Pending In"],
    ["To", false, ""],
    ["To + Pending In", false, ""],
    ["From", false, ""],
    ["From + Pending Out", true, "Both"],
    ["Both", false, ""],
  ],
  // A.3.4
  unsubscribed: [
    ["None", false, ""],
    ["None + Pending Out", true, "None"],
    ["None + Pending In", false, ""],
    ["None + Pending Out/In", true, "None + Pending In"],
    ["To", true, "None"],
    ["To + Pending In", true, "None + Pending In"],
    ["From", false, ""],
    ["From + Pending Out", true, "From"],
    ["Both", true, "From"],
  ],
};

for (const [dir, fn, tables, verb] of [["A.2 outbound", outbound, OUTBOUND, "routed"], ["A.3 inbound", inbound, INBOUND, "delivered"]] as const) {
  for (const [type, rows] of Object.entries(tables) as [SubscriptionType, Row[]][]) {
    test(`${dir} ${type}: the table has one row per state`, () => {
      assert.deepEqual(rows.map((r) => r[0]), STATES);
    });
    for (const [from, pass, to] of rows) {
      test(`${dir} ${type} in "${from}" is ${pass ? "" : "not "}${verb} and leads to "${to || from}"`, () => {
        const t = fn(parseStateName(from), type);
        assert.equal(t.pass, pass);
        assert.equal(stateName(t.state), to || from);
      });
    }
  }
}

test("state names round-trip and impossible states are refused", () => {
  for (const s of STATES) assert.equal(stateName(parseStateName(s)), s);
  assert.throws(() => parseStateName("Both + Pending In"));
  assert.throws(() => parseStateName("To + Pending Out"));
  assert.throws(() => parseStateName("Maybe"));
});

test("§3.4 outbound subscribed without a pending request pre-approves in None, None + Pending Out and To only", () => {
  for (const s of STATES) {
    const t = outbound(parseStateName(s), "subscribed");
    const expect = s === "None" || s === "None + Pending Out" || s === "To";
    assert.equal(t.state.approved, expect, s);
  }
});

test("§3.4 a pre-approved inbound subscribe is approved at once: not delivered, answered, and the contact gets presence", () => {
  for (const [s, next] of [["None", "From"], ["None + Pending Out", "From + Pending Out"], ["To", "Both"]] as const) {
    const t = inbound(parseStateName(s, true), "subscribe");
    assert.equal(t.pass, false);
    assert.equal(t.replySubscribed, true);
    assert.equal(t.presence, "available");
    assert.equal(stateName(t.state), next);
    assert.equal(t.state.approved, false);
  }
});

test("§3.4 outbound unsubscribed cancels a pre-approval in every state", () => {
  for (const s of STATES) assert.equal(outbound(parseStateName(s, true), "unsubscribed").state.approved, false, s);
});

test("A.3.1 inbound subscribe from a contact that already has a subscription is answered with subscribed", () => {
  for (const s of ["From", "From + Pending Out", "Both"]) {
    const t = inbound(parseStateName(s), "subscribe");
    assert.equal(t.replySubscribed, true, s);
    assert.equal(t.presence, "available", s);
  }
  for (const s of ["None", "None + Pending In", "To"]) assert.equal(inbound(parseStateName(s), "subscribe").replySubscribed, false, s);
});

test("losing the contact's subscription sends it unavailable; approving sends it presence", () => {
  assert.equal(outbound(parseStateName("Both"), "unsubscribed").presence, "unavailable");
  assert.equal(outbound(parseStateName("None + Pending In"), "unsubscribed").presence, undefined);
  assert.equal(inbound(parseStateName("From"), "unsubscribe").presence, "unavailable");
  assert.equal(inbound(parseStateName("None + Pending In"), "unsubscribe").presence, undefined);
  assert.equal(outbound(parseStateName("To + Pending In"), "subscribed").presence, "available");
});
