// Unit tests of the XEP-0004 data form helpers: building forms and results, reading and checking submissions.
import { test } from "node:test";
import assert from "node:assert/strict";
import { xml } from "../xml/parser.ts";
import { booleanValue, buildForm, checkSubmission, FormValueError, jidValue, multiValue, readForm, textValue } from "./data-forms.ts";

test("a form is built with FORM_TYPE, title, instructions, required fields and options", () => {
  const x = buildForm({
    type: "form",
    formType: "http://jabber.org/protocol/admin",
    title: "Trust a server",
    instructions: "Name the server",
    fields: [
      { var: "peerjid", type: "jid-single", label: "Server", required: true },
      { var: "mutual", type: "boolean", value: true },
      { var: "choice", type: "list-single", options: [{ value: "a", label: "A" }, { value: "b" }] },
      { var: "lines", type: "text-multi", value: "one\ntwo" },
    ],
  });
  assert.equal(
    x.toString(),
    "<x xmlns='jabber:x:data' type='form'><title>Trust a server</title><instructions>Name the server</instructions>" +
      "<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/admin</value></field>" +
      "<field var='peerjid' type='jid-single' label='Server'><required/></field>" +
      "<field var='mutual' type='boolean'><value>1</value></field>" +
      "<field var='choice' type='list-single'><option label='A'><value>a</value></option><option><value>b</value></option></field>" +
      "<field var='lines' type='text-multi'><value>one</value><value>two</value></field></x>",
  );
});

test("a result table has reported columns and one item per row", () => {
  const x = buildForm({
    type: "result",
    reported: [{ var: "peer", label: "Peer" }, { var: "sub", label: "Subscription" }],
    items: [{ peer: "a.example", sub: "both" }, { peer: "b.example" }],
  });
  assert.equal(
    x.toString(),
    "<x xmlns='jabber:x:data' type='result'><reported><field var='peer' label='Peer'/><field var='sub' label='Subscription'/></reported>" +
      "<item><field var='peer'><value>a.example</value></field><field var='sub'><value>both</value></field></item>" +
      "<item><field var='peer'><value>b.example</value></field><field var='sub'/></item></x>",
  );
});

test("submitted values are read with typed getters", () => {
  const form = readForm(xml`<x xmlns='jabber:x:data' type='submit'>
    <field var='FORM_TYPE'><value>urn:test</value></field>
    <field var='peerjid'><value> Example.ORG </value></field>
    <field var='mutual'><value>false</value></field>
    <field var='peers'><value>a.example</value><value>b.example</value></field>
    <field var='empty'><value></value></field>
  </x>`);
  assert.equal(form.type, "submit");
  assert.equal(form.formType, "urn:test");
  assert.equal(jidValue(form, "peerjid")?.toString(), "example.org");
  assert.equal(booleanValue(form, "mutual", true), false);
  assert.equal(booleanValue(form, "absent", true), true);
  assert.deepEqual(multiValue(form, "peers"), ["a.example", "b.example"]);
  assert.equal(textValue(form, "empty"), undefined);
  assert.throws(() => textValue(form, "peers"), FormValueError);
});

test("bad values throw FormValueError naming the field", () => {
  const form = readForm(xml`<x xmlns='jabber:x:data' type='submit'><field var='j'><value>a@@b</value></field><field var='b'><value>yes</value></field></x>`);
  assert.throws(() => jidValue(form, "j"), (e: unknown) => e instanceof FormValueError && e.field === "j");
  assert.throws(() => booleanValue(form, "b", false), (e: unknown) => e instanceof FormValueError && e.field === "b");
  assert.throws(() => readForm(xml`<x xmlns='jabber:x:data' type='weird'/>`), FormValueError);
  assert.throws(() => readForm(xml`<x xmlns='jabber:x:data' type='submit'><field var='a'/><field var='a'/></x>`), FormValueError);
});

test("a submission is checked against the form that asked for it", () => {
  const asked = buildForm({
    type: "form",
    formType: "urn:test",
    fields: [
      { var: "peerjid", type: "jid-single", required: true },
      { var: "flag", type: "boolean" },
      { var: "many", type: "jid-multi" },
      { var: "one", type: "text-single" },
    ],
  });
  const ok = readForm(xml`<x xmlns='jabber:x:data' type='submit'><field var='peerjid'><value>a.example</value></field><field var='many'><value>x@y</value><value>z</value></field></x>`);
  assert.deepEqual(checkSubmission(asked, ok), []);
  const bad = readForm(xml`<x xmlns='jabber:x:data' type='submit'><field var='flag'><value>maybe</value></field><field var='many'><value>@bad</value></field><field var='one'><value>a</value><value>b</value></field></x>`);
  assert.deepEqual(checkSubmission(asked, bad).map((p) => p.field).sort(), ["flag", "many", "one", "peerjid"]);
});
