// XEP-0045: Multi-User Chat <https://xmpp.org/extensions/xep-0045.html> §19.1 (namespaces), §19.2 (features), with
// XEP-0203 delayed delivery and XEP-0410 self-ping: the names this module uses, in one place.
export const NS_MUC = "http://jabber.org/protocol/muc";
export const NS_MUC_USER = "http://jabber.org/protocol/muc#user";
export const NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin";
export const NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner";
export const NS_MUC_ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig";
export const NS_MUC_ROOMINFO = "http://jabber.org/protocol/muc#roominfo";
/** The room reflects the sender's message id (XEP-0045 §7.4, since 1.31). */
export const NS_MUC_STABLE_ID = "http://jabber.org/protocol/muc#stable_id";
/** XEP-0410: the room answers an occupant's ping to its own occupant JID itself. */
export const NS_MUC_SELF_PING = "http://jabber.org/protocol/muc#self-ping-optimization";
export const NS_DELAY = "urn:xmpp:delay";
export const NS_VCARD = "vcard-temp";
/** XEP-0421: anonymous unique occupant identifiers. */
export const NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0";
/** XEP-0425 message moderation (0.2/0.3 wire format, as slixmpp 1.8 speaks it), on XEP-0422 fastening and XEP-0424. */
export const NS_MODERATE = "urn:xmpp:message-moderate:0";
export const NS_FASTEN = "urn:xmpp:fasten:0";
export const NS_RETRACT = "urn:xmpp:message-retract:0";
