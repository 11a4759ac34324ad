// Namespace constants (RFC 6120, RFC 6121 and the XEPs the server speaks).
export const NS_CLIENT = "jabber:client";
export const NS_SERVER = "jabber:server";
/** XEP-0114 external components, connecting to the server ("accept" side). */
export const NS_COMPONENT = "jabber:component:accept";
export const NS_STREAM = "http://etherx.jabber.org/streams";
export const NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams";
export const NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
export const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";
export const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
export const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";
export const NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session";
export const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";
export const NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items";
export const NS_PING = "urn:xmpp:ping";
export const NS_VERSION = "jabber:iq:version";
export const NS_DATA = "jabber:x:data";
export const NS_SERVERINFO = "http://jabber.org/network/serverinfo";
export const NS_ROSTER = "jabber:iq:roster";
export const NS_XML = "http://www.w3.org/XML/1998/namespace";
export const NS_DIALBACK = "jabber:server:dialback";
export const NS_DIALBACK_FEATURE = "urn:xmpp:features:dialback";
export const NS_CARBONS = "urn:xmpp:carbons:2";
export const NS_FORWARD = "urn:xmpp:forward:0";
export const NS_HINTS = "urn:xmpp:hints";
