// Minimal typings for @xmpp/client as the tests use it (the package ships none).
declare module "@xmpp/client" {
  import type { EventEmitter } from "node:events";
  export interface XmlElement {
    name: string;
    attrs: Record<string, string>;
    children: (XmlElement | string)[];
    getChild(name: string, xmlns?: string): XmlElement | undefined;
    getChildren(name: string, xmlns?: string): XmlElement[];
    getChildText(name: string, xmlns?: string): string | null;
    text(): string;
    toString(): string;
  }
  export interface XmppClient extends EventEmitter {
    start(): Promise<{ toString(): string }>;
    stop(): Promise<void>;
    send(el: XmlElement): Promise<void>;
    iqCaller: { request(el: XmlElement, timeout?: number): Promise<XmlElement>; get(el: XmlElement, to?: string): Promise<XmlElement> };
    jid: { toString(): string } | null;
  }
  export function client(opts: Record<string, unknown>): XmppClient;
  export function xml(name: string, attrs?: Record<string, string | undefined>, ...children: (XmlElement | string)[]): XmlElement;
}
