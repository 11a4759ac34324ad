// Namespaces of XEP-0060 Publish-Subscribe <https://xmpp.org/extensions/xep-0060.html> §14, XEP-0223 and XEP-0115.
export const NS_PUBSUB = "http://jabber.org/protocol/pubsub";
export const NS_PUBSUB_OWNER = "http://jabber.org/protocol/pubsub#owner";
export const NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event";
export const NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors";
export const NS_PUBSUB_NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config";
export const NS_PUBSUB_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options";
export const NS_PUBSUB_META_DATA = "http://jabber.org/protocol/pubsub#meta-data";
export const NS_CAPS = "http://jabber.org/protocol/caps";
