// Browser side of test/clients/converse.test.ts, loaded by its page after dist/converse.min.js. It registers a
// whitelisted Converse plugin (the documented way to reach `_converse.api`) and exposes a few calls on
// `window.comity` that the test drives with page.evaluate(). Plain JavaScript: it runs in Chromium as it is.
"use strict";

window.comity = {
  /** True once Converse fired `connected` (logged in, bound, session established, roster requested). */
  connected: false,
  /** What Converse reported, in order: events and connection feedback, for assertions and failure reports. */
  log: [],
  /** Bodies of chat messages Converse received and handled, as { from, body }. */
  received: [],
  api: undefined,
  _converse: undefined,

  /** Register the plugin and start Converse with `settings` (it logs in by itself: auto_login). */
  start(settings) {
    const self = window.comity;
    converse.plugins.add("comity-test", {
      initialize() {
        const _converse = this._converse;
        const api = _converse.api;
        self._converse = _converse;
        self.api = api;
        api.listen.on("connected", () => {
          self.connected = true;
          self.log.push("connected");
        });
        api.listen.on("disconnected", () => self.log.push("disconnected"));
        api.listen.on("connfeedback", (fb) => self.log.push(`connfeedback ${fb.get("connection_status")} ${fb.get("message") ?? ""}`));
        api.listen.on("contactRequest", (contact) => self.log.push(`contactRequest ${contact.get("jid")}`));
        api.listen.on("message", (data) => {
          if (data.attrs.body) self.received.push({ from: data.attrs.from, body: data.attrs.body });
        });
      },
    });
    // Not awaited: with auto_login it resolves only after the login attempt, and the test polls `connected`.
    converse.initialize({ ...settings, whitelisted_plugins: ["comity-test"] }).catch((e) => self.log.push(`initialize failed: ${e}`));
  },

  /** The roster item for `jid` as Converse holds it, or null. */
  contact(jid) {
    const c = window.comity._converse?.roster?.get(jid);
    return c ? { subscription: c.get("subscription"), ask: c.get("ask") ?? null, requesting: c.get("requesting") ?? null } : null;
  },

  /** Add `jid` to the roster and ask for its presence (what the "Add a contact" form does). */
  async addContact(jid, name) {
    await window.comity.api.contacts.add(jid, name);
  },

  /**
   * Accept a pending contact request: exactly what the roster's "accept" button does in Converse 10
   * (rosterview/contactview.js acceptRequest): roster set, then presence subscribed and subscribe.
   */
  async acceptRequest(jid) {
    const { _converse } = window.comity;
    const contact = _converse.roster.get(jid);
    await _converse.roster.sendContactAddIQ(jid, contact.getFullname(), []);
    contact.authorize().subscribe();
  },

  /** Bring the chat with `jid` to the front, as clicking the contact in the roster does. */
  async openChat(jid) {
    await window.comity.api.chats.open(jid, {}, true);
  },

  /** Open a chat with `jid` (brought to the front) and send `body` from it. */
  async send(jid, body) {
    const { api } = window.comity;
    // chats.open resolves with nothing in the fullscreen view mode (Converse 10's maybeShow): get the model after.
    await api.chats.open(jid, {}, true);
    const chat = await api.chats.get(jid);
    await chat.sendMessage({ body });
  },
};
