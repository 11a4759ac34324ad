// Hook dispatch: priorities, HANDLED, and decision events that fail closed (fireSync).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Element } from "../xml/element.ts";
import { Events, HANDLED, type EventMap } from "./events.ts";

const filterEvent = (): EventMap["s2s/filter"] => ({ stanza: new Element("message", "jabber:client"), local: "a.test", remote: "b.test", direction: "in", host: "a.test" });

test("a decision handler that returns a promise refuses the stanza instead of letting it pass", () => {
  const events = new Events();
  const faults: unknown[] = [];
  // @ts-expect-error: decision events take synchronous handlers only (SyncEventName)
  events.on("s2s/filter", async () => undefined);
  assert.equal(events.fireSync("s2s/filter", filterEvent(), (err) => faults.push(err)), true);
  assert.equal(faults.length, 1);
});

test("a decision handler that throws refuses the stanza and reports the fault", () => {
  const events = new Events();
  const faults: unknown[] = [];
  events.on("s2s/filter", () => {
    throw new Error("policy store unreachable");
  });
  assert.equal(events.fireSync("s2s/filter", filterEvent(), (err) => faults.push(err)), true);
  assert.match(String(faults[0]), /policy store unreachable/);
});

test("synchronous decisions pass or refuse in priority order", () => {
  const events = new Events();
  const seen: string[] = [];
  events.on("s2s/filter", () => void seen.push("low"), -1);
  events.on("s2s/filter", (ev) => {
    seen.push("high");
    return ev.remote === "evil.test" ? HANDLED : undefined;
  }, 10);
  assert.equal(events.fireSync("s2s/filter", filterEvent()), false);
  assert.deepEqual(seen, ["high", "low"]);
  assert.equal(events.fireSync("s2s/filter", { ...filterEvent(), remote: "evil.test" }), true);
});
