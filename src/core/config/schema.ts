// Configuration schema (TypeBox: one object gives the TypeScript type, the validator and the docs table).
// Key names follow ../shared/DESIGN.md "Operator interface"; they are part of the stable interface.
import { Type, type Static } from "@sinclair/typebox";

const ListenAddr = Type.String({
  description: "Address and port, `host:port` or `[v6]:port`",
  pattern: "^(\\[[0-9a-fA-F:.]+\\]|[^\\s:\\[\\]]+):[0-9]{1,5}$",
});

/**
 * TLS 1.2 suites of the default policy: ECDHE key exchange (forward secrecy) with AEAD ciphers only, as Mozilla's
 * "intermediate" profile without its DHE suites; no static-RSA and no CBC suites. TLS 1.3 suites are OpenSSL's
 * (all AEAD). Names are OpenSSL's.
 */
export const DEFAULT_TLS_CIPHERS = [
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

/** A listener section's own TLS policy: what it gives replaces the top-level tls_policy key by key. */
const TlsPolicyOverride = Type.Optional(
  Type.Object(
    {
      min_version: Type.Optional(Type.Union([Type.Literal("TLSv1.2"), Type.Literal("TLSv1.3")], { description: "Oldest TLS version accepted here" })),
      ciphers: Type.Optional(Type.String({ minLength: 1, description: "OpenSSL cipher list for this section's listeners" })),
    },
    { additionalProperties: false, description: "This section's TLS policy; keys left out come from the top-level `tls_policy`" },
  ),
);

const ContactList = Type.Array(Type.String({ minLength: 1 }), { default: [], description: "URIs for this role" });

/** One XEP-0215 external service (src/modules/external-services). */
const ExternalService = Type.Object(
  {
    type: Type.Union([Type.Literal("stun"), Type.Literal("turn"), Type.Literal("turns")], { description: "Service type (XEP-0215 registry): `stun`, `turn`, or `turns` (TURN over TLS)" }),
    host: Type.String({ minLength: 1, description: "Host name or IP address clients connect to" }),
    port: Type.Integer({ minimum: 1, maximum: 65535, description: "Port clients connect to" }),
    transport: Type.Optional(Type.Union([Type.Literal("udp"), Type.Literal("tcp")], { description: "`udp` or `tcp` (default: not stated; `turns` is always over TCP)" })),
    name: Type.Optional(Type.String({ minLength: 1, description: "Human-readable label shown to users" })),
    secret: Type.Optional(
      Type.String({
        minLength: 16,
        description: "Shared secret of the TURN REST scheme (coturn `static-auth-secret` with `use-auth-secret`): local users get time-limited credentials",
      }),
    ),
    ttl: Type.Integer({ minimum: 1, maximum: 2592000, default: 86400, description: "Seconds the credentials made with `secret` stay valid" }),
  },
  { additionalProperties: false },
);

export const HostSchema = Type.Object(
  {
    domain: Type.String({ minLength: 1, description: "The virtual host's domain (a served XMPP domain)" }),
    admins: Type.Array(Type.String({ minLength: 1 }), { default: [], description: "Bare JIDs of the host's administrators" }),
    contact: Type.Object(
      {
        abuse: ContactList,
        admin: ContactList,
        feedback: ContactList,
        sales: ContactList,
        security: ContactList,
        support: ContactList,
        status: ContactList,
      },
      { default: {}, additionalProperties: false, description: "XEP-0157 contact addresses (URIs: xmpp:, mailto:, https:)" },
    ),
    external_services: Type.Array(ExternalService, {
      default: [],
      description: "STUN/TURN servers offered to this host's users (XEP-0215), e.g. for calls; see src/modules/external-services/README.md",
    }),
    tls: Type.Optional(
      Type.Object(
        { cert: Type.String({ description: "PEM certificate chain" }), key: Type.String({ description: "PEM private key" }) },
        { additionalProperties: false, description: "Certificate for this host (defaults to the global `tls`)" },
      ),
    ),
    muc: Type.Optional(
      Type.Object(
        {
          domain: Type.String({
            minLength: 1,
            description: "Domain of the chat service, e.g. `conference.example.org` (not a host; federation needs DNS for it too)",
          }),
          name: Type.String({ default: "Chatrooms", description: "Service name shown by service discovery" }),
          create: Type.Union([Type.Literal("admins"), Type.Literal("users"), Type.Literal("anyone")], {
            default: "users",
            description: "Who may create rooms: the host's `admins`, its `users` (local accounts), or `anyone` (remote users too)",
          }),
          max_history: Type.Integer({ minimum: 0, default: 20, description: "Messages of discussion history kept per room and sent to joiners (0: none)" }),
          max_rooms: Type.Integer({ minimum: 1, default: 1000, description: "Most rooms at once; further creations are refused" }),
          max_occupants: Type.Integer({ minimum: 1, default: 200, description: "Most occupants per room (room owners may set a lower limit)" }),
          default_whois: Type.Union([Type.Literal("moderators"), Type.Literal("anyone")], {
            default: "moderators",
            description:
              "Who sees occupants' real JIDs in a new room: `moderators` (semi-anonymous) or `anyone` (non-anonymous); owners change it per room (`muc#roomconfig_whois`)",
          }),
          archive: Type.Boolean({
            default: true,
            description:
              "Keep a message archive per room (XEP-0313; also the discussion history after a restart); owners switch it off per room (`muc#roomconfig_enablearchiving`). `false`: no room archives, history in memory only",
          }),
          archive_max_per_room: Type.Integer({ minimum: 1, default: 1000, description: "Messages kept in each room's archive; the oldest are removed beyond it" }),
        },
        { additionalProperties: false, description: "Multi-user chat service (XEP-0045) on its own domain; absent: no chat rooms. Persistent rooms are stored, and room messages are archived (XEP-0313) unless `archive` is off" },
      ),
    ),
    pubsub: Type.Optional(
      Type.Object(
        {
          domain: Type.String({ minLength: 1, description: "Domain of the publish-subscribe service, e.g. `pubsub.example.org` (federation needs DNS for it too)" }),
          name: Type.String({ default: "Publish-Subscribe", description: "Service name shown by service discovery" }),
          create: Type.Union([Type.Literal("admins"), Type.Literal("users"), Type.Literal("anyone")], {
            default: "users",
            description: "Who may create nodes: the host's `admins`, its `users` (local accounts), or `anyone` (remote users too)",
          }),
          max_nodes: Type.Integer({ minimum: 1, maximum: 1000000, default: 1000, description: "Most nodes of the service (more: resource-constraint + max-nodes-exceeded)" }),
        },
        { additionalProperties: false, description: "Standalone publish-subscribe service (XEP-0060) on its own domain; absent: none (PEP on accounts is always on)" },
      ),
    ),
    upload: Type.Optional(
      Type.Object(
        {
          domain: Type.String({
            minLength: 1,
            description: "Domain of the upload service, e.g. `upload.example.org` (not a host); listed in the host's service discovery",
          }),
          name: Type.String({ default: "HTTP File Upload", description: "Service name shown by service discovery" }),
          max_file_size: Type.Integer({ minimum: 1, default: 10485760, description: "Largest file accepted, bytes (advertised in disco#info; larger requests get `file-too-large`)" }),
          quota_daily: Type.Integer({
            minimum: 0,
            default: 104857600,
            description: "Bytes one user may upload in any 24 hours (`resource-constraint` beyond it); 0: no quota",
          }),
          expire_after: Type.Integer({ minimum: 0, default: 604800, description: "Seconds an uploaded file is kept before the sweeper deletes it; 0: kept until its owner's account is deleted" }),
          slot_timeout: Type.Integer({ minimum: 10, maximum: 86400, default: 300, description: "Seconds a slot's PUT URL may be used after it is given out" }),
          url: Type.Optional(
            Type.String({
              pattern: "^https?://[^\\s?#]+[^\\s?#/]$",
              description:
                "Base URL clients see for files (`<url>/<slot>/<name>`), when a reverse proxy or CDN forwards it to `/upload/<domain>` on the HTTP listener; unset: built from the first HTTPS (else HTTP) listener",
            }),
          ),
          allow_from: Type.Array(Type.String({ minLength: 1 }), {
            default: [],
            description: "Other domains or bare JIDs whose users may upload too (everyone else but the host's own users gets `not-allowed`)",
          }),
        },
        {
          additionalProperties: false,
          description: "HTTP File Upload service (XEP-0363) on its own domain, served by the HTTP listener (needs `http.listen` or `http.tls_listen`); files live under data_dir/upload; absent: no uploads",
        },
      ),
    ),
  },
  { additionalProperties: false },
);

export const ConfigSchema = Type.Object(
  {
    hosts: Type.Array(HostSchema, { minItems: 1, description: "Served domains" }),
    data_dir: Type.String({ default: "./data", description: "SQLite database, generated certificates, control socket" }),
    storage: Type.Object(
      {
        backend: Type.Union([Type.Literal("sqlite"), Type.Literal("postgres")], {
          default: "sqlite",
          description: "`sqlite`: one file in data_dir; `postgres`: a PostgreSQL server at `postgres_url`",
        }),
        postgres_url: Type.Optional(
          Type.String({
            minLength: 1,
            description:
              "PostgreSQL connection URL, e.g. `postgres://comity@127.0.0.1:5432/comity` (required with backend `postgres`; the password may come from PGPASSWORD or ~/.pgpass instead)",
          }),
        ),
        postgres_schema: Type.Optional(
          Type.String({
            pattern: "^[a-z_][a-z0-9_]*$",
            description: "A lowercase schema name (letters, digits, `_`) for Comity's tables, created when missing (default: the URL's search_path, normally `public`)",
          }),
        ),
        postgres_pool_size: Type.Integer({ minimum: 1, default: 10, description: "Most connections to PostgreSQL at once" }),
      },
      { default: {}, additionalProperties: false, description: "Where accounts, rosters, messages and server trust are kept (docs/storage.md)" },
    ),
    tls: Type.Optional(
      Type.Object(
        { cert: Type.String({ description: "PEM certificate chain" }), key: Type.String({ description: "PEM private key" }) },
        { additionalProperties: false, description: "Default certificate; without it a self-signed one is generated in data_dir" },
      ),
    ),
    tls_policy: Type.Object(
      {
        min_version: Type.Union([Type.Literal("TLSv1.2"), Type.Literal("TLSv1.3")], { default: "TLSv1.2", description: "Oldest TLS version accepted" }),
        ciphers: Type.String({
          minLength: 1,
          default: DEFAULT_TLS_CIPHERS,
          description: "OpenSSL cipher list (TLS 1.2 suites and TLS_* 1.3 suites, colon-separated); the default is ECDHE with AEAD only",
        }),
      },
      {
        default: {},
        additionalProperties: false,
        description: "TLS on every listener (c2s, s2s, HTTPS; STARTTLS and direct TLS): versions and suites. Renegotiation is always refused",
      },
    ),
    c2s: Type.Object(
      {
        tls_policy: TlsPolicyOverride,
        listen: Type.Array(ListenAddr, { default: ["0.0.0.0:5222"], description: "Client listeners (STARTTLS)" }),
        direct_tls: Type.Array(ListenAddr, { default: ["0.0.0.0:5223"], description: "Client listeners with direct TLS (XEP-0368); when left out, the addresses of `c2s.listen` with port 5223" }),
        encryption: Type.Union([Type.Literal("required"), Type.Literal("optional")], {
          default: "required",
          description: "`optional` allows plaintext streams (development, benchmarks)",
        }),
        max_stanza_size: Type.Integer({ minimum: 1024, default: 262144, description: "Largest stanza accepted after authentication, bytes" }),
        max_stanza_size_preauth: Type.Integer({ minimum: 512, default: 10000, description: "Largest stanza accepted before authentication, bytes" }),
        max_sessions_per_user: Type.Integer({ minimum: 1, default: 10, description: "Concurrent sessions (resources) per account" }),
        auth_attempts: Type.Integer({ minimum: 1, default: 3, description: "Failed SASL attempts on one stream before it is closed" }),
        handshake_timeout: Type.Integer({ minimum: 1, default: 60, description: "Seconds a stream may take to authenticate and bind" }),
        max_send_buffer: Type.Integer({
          minimum: 0,
          default: 4194304,
          description:
            "Most bytes waiting to be written to a client that does not read (TCP and WebSocket); past it the stream is closed with resource-constraint and what was not written goes to offline storage or bounces (0: no bound)",
        }),
        stream_management: Type.Object(
          {
            enabled: Type.Boolean({ default: true, description: "Offer XEP-0198 Stream Management (acks and resumption) to clients" }),
            resume_timeout_seconds: Type.Integer({
              minimum: 0,
              maximum: 86400,
              default: 300,
              description: "How long a session whose connection dropped stays online waiting to be resumed; 0: no resumption",
            }),
            max_unacked: Type.Integer({
              minimum: 10,
              default: 1000,
              description:
                "Most stanzas kept for a client until it acknowledges them; beyond it a connected stream is closed (policy-violation) and a hibernating session ends, its messages going to offline storage",
            }),
            ack_every: Type.Integer({ minimum: 1, default: 5, description: "Ask the client for an ack (`<r/>`) after this many unacknowledged stanzas" }),
            ack_delay_seconds: Type.Integer({ minimum: 1, default: 5, description: "…or this many seconds after the first unacknowledged stanza, whichever comes first" }),
          },
          { default: {}, additionalProperties: false, description: "XEP-0198 Stream Management for client streams (TCP and WebSocket)" },
        ),
      },
      { default: {}, additionalProperties: false, description: "Client connections (RFC 6120)" },
    ),
    s2s: Type.Object(
      {
        tls_policy: TlsPolicyOverride,
        listen: Type.Array(ListenAddr, { default: ["0.0.0.0:5269"], description: "Server-to-server listeners" }),
        direct_tls: Type.Array(ListenAddr, { default: [], description: "Server listeners with direct TLS (XEP-0368)" }),
        encryption: Type.Union([Type.Literal("required"), Type.Literal("optional")], {
          default: "required",
          description: "`optional` allows links without TLS (dialback over plaintext; testing only)",
        }),
        verify_certificates: Type.Boolean({ default: true, description: "false: accept self-signed peers (dialback still proves the domain)" }),
        ca_file: Type.Optional(Type.String({ description: "Extra trusted CA certificates (PEM) for peer certificates" })),
        routes: Type.Record(Type.String(), ListenAddr, { default: {}, description: "Static peer addresses (domain → host:port), bypass DNS" }),
        dns_servers: Type.Array(Type.String(), { default: [], description: "DNS servers for SRV lookups (default: the system's)" }),
        max_stanza_size: Type.Integer({ minimum: 1024, default: 524288, description: "Largest stanza accepted from a peer, bytes" }),
        idle_timeout: Type.Integer({ minimum: 10, default: 600, description: "Seconds before an idle link is closed" }),
        max_send_buffer: Type.Integer({
          minimum: 0,
          default: 8388608,
          description:
            "Most bytes waiting to be written to a peer server that does not read; past it the link is closed with resource-constraint and the stanzas not written bounce with remote-server-timeout (0: no bound)",
        }),
      },
      { default: {}, additionalProperties: false, description: "Server-to-server connections (federation)" },
    ),
    components: Type.Object(
      {
        listen: Type.Array(ListenAddr, {
          default: [],
          description:
            "External component listeners (XEP-0114), e.g. `127.0.0.1:5347`; the protocol has no TLS, so keep them on loopback (`comity check` warns otherwise)",
        }),
        services: Type.Array(
          Type.Object(
            {
              domain: Type.String({ minLength: 1, description: "The component's domain, e.g. `irc.example.org` (not a host or another service; federation needs DNS for it too)" }),
              secret: Type.String({ minLength: 1, description: "Shared secret the component proves in its handshake (XEP-0114 §3: SHA-1 of stream id + secret)" }),
              host: Type.Optional(
                Type.String({
                  minLength: 1,
                  description:
                    "The host that owns it: its federation policy applies to the component's traffic and its disco#items list the domain (default: the host the domain is a subdomain of, else the first host)",
                }),
              ),
            },
            { additionalProperties: false },
          ),
          { default: [], description: "Components allowed to connect, one per domain" },
        ),
        max_stanza_size: Type.Integer({ minimum: 1024, default: 524288, description: "Largest stanza accepted from a component after its handshake, bytes (before it: c2s.max_stanza_size_preauth)" }),
      },
      { default: {}, additionalProperties: false, description: "External components (XEP-0114): bridges such as Biboumi, Slidge or Spectrum2 that serve a domain of their own" },
    ),
    http: Type.Object(
      {
        tls_policy: TlsPolicyOverride,
        listen: Type.Array(ListenAddr, { default: [], description: "HTTP listeners: WebSocket /xmpp-websocket, BOSH /http-bind, /admin, /api" }),
        tls_listen: Type.Array(ListenAddr, { default: [], description: "HTTPS listeners (the default host's certificate), same paths" }),
        trusted_proxies: Type.Array(Type.String(), {
          default: [],
          description: "Addresses of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto headers are believed",
        }),
        websocket: Type.Boolean({ default: true, description: "Serve XMPP over WebSocket (RFC 7395) at /xmpp-websocket" }),
        websocket_origins: Type.Array(Type.String(), {
          default: [],
          description: "Browser origins allowed to open /xmpp-websocket (the Origin header, e.g. `https://chat.example.org`); empty: any",
        }),
        websocket_url: Type.Optional(
          Type.String({
            pattern: "^wss?://[^\\s]+$",
            description:
              "WebSocket URL published at /.well-known/host-meta (XEP-0156), e.g. `wss://chat.example.org/xmpp-websocket` behind a proxy that rewrites the path; unset: built from each request's Host",
          }),
        ),
        bosh: Type.Object(
          {
            enabled: Type.Boolean({ default: true, description: "Serve XMPP over BOSH (XEP-0124, XEP-0206) at /http-bind" }),
            max_wait: Type.Integer({
              minimum: 1,
              maximum: 300,
              default: 60,
              description: "Longest a request is held waiting for something to send, seconds (a client's larger `wait` is lowered to it)",
            }),
            max_hold: Type.Integer({ minimum: 0, maximum: 4, default: 1, description: "Most requests held at once per session (a client's larger `hold` is lowered to it)" }),
            inactivity: Type.Integer({
              minimum: 2,
              maximum: 3600,
              default: 60,
              description: "Seconds a session may go with no request held before it ends (its user goes offline)",
            }),
            polling: Type.Integer({
              minimum: 0,
              maximum: 60,
              default: 2,
              description: "Shortest interval between empty polls, seconds (XEP-0124 §12); polling faster ends the session with policy-violation",
            }),
            max_queued_stanzas: Type.Integer({
              minimum: 10,
              default: 500,
              description: "Most stanzas waiting for the client's next request; beyond it (or `max_queued_bytes`) the session ends with policy-violation",
            }),
            max_queued_bytes: Type.Integer({ minimum: 65536, default: 2097152, description: "Most bytes of stanzas waiting for the client's next request" }),
            origins: Type.Array(Type.String(), {
              default: [],
              description: "Browser origins allowed to use /http-bind (CORS; the Origin header, e.g. `https://chat.example.org`); empty: any",
            }),
            url: Type.Optional(
              Type.String({
                pattern: "^https?://[^\\s]+$",
                description:
                  "BOSH URL published at /.well-known/host-meta (XEP-0156), e.g. `https://chat.example.org/http-bind` behind a proxy that rewrites the path; unset: built from each request's Host",
              }),
            ),
          },
          { default: {}, additionalProperties: false, description: "XMPP over BOSH (XEP-0124, XEP-0206) at /http-bind, for web clients" },
        ),
        admin_console: Type.Boolean({ default: true, description: "Serve the web admin console at /admin (host admins log in with their XMPP password)" }),
        api: Type.Boolean({ default: true, description: "Serve the HTTP API at /api (host admins, HTTP Basic with their XMPP password)" }),
      },
      { default: {}, additionalProperties: false, description: "HTTP server" },
    ),
    auth: Type.Object(
      {
        password_storage: Type.Union([Type.Literal("scram"), Type.Literal("plain")], {
          default: "scram",
          description: "`scram`: only salted SCRAM keys are stored; `plain`: the password itself (as ejabberd's auth_password_format)",
        }),
        scram_iterations: Type.Integer({ minimum: 4096, default: 4096, description: "PBKDF2 iteration count for new SCRAM credentials" }),
        insecure_plain: Type.Boolean({
          default: false,
          description: "Offer SASL PLAIN on unencrypted streams too (needs c2s.encryption: optional; benchmarks and development only)",
        }),
        failure_delay_ms: Type.Integer({ minimum: 0, default: 1000, description: "Base delay after repeated failures from one address (doubles, capped at 30 s)" }),
      },
      { default: {}, additionalProperties: false, description: "Accounts and passwords" },
    ),
    limits: Type.Object(
      {
        max_depth: Type.Integer({ minimum: 4, default: 32, description: "Deepest element nesting inside a stanza" }),
        max_children: Type.Integer({ minimum: 8, default: 1024, description: "Most child nodes of one element" }),
        max_attributes: Type.Integer({ minimum: 4, default: 64, description: "Most attributes on one element" }),
      },
      { default: {}, additionalProperties: false, description: "Parser limits for every stream" },
    ),
    roster: Type.Object(
      { max_items: Type.Integer({ minimum: 1, default: 1000, description: "Most contacts in one user's roster (RFC 6121 §2.1.6: beyond it, `not-allowed`)" }) },
      { default: {}, additionalProperties: false, description: "Contact lists (RFC 6121 §2)" },
    ),
    offline: Type.Object(
      {
        max_messages: Type.Integer({ minimum: 0, default: 500, description: "Messages kept per offline user (XEP-0160); 0 disables offline storage" }),
      },
      { default: {}, additionalProperties: false, description: "Offline message storage (XEP-0160)" },
    ),
    mam: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: "Keep users' chat messages in a per-user archive clients can query (XEP-0313)" }),
        max_per_user: Type.Integer({ minimum: 1, default: 10000, description: "Messages kept per user; the oldest are removed beyond it" }),
        max_page: Type.Integer({ minimum: 1, maximum: 1000, default: 250, description: "Most messages one archive query returns (a larger RSM max is lowered to this)" }),
      },
      { default: {}, additionalProperties: false, description: "Message Archive Management (XEP-0313) of users' one-to-one messages" },
    ),
    csi: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: "Offer XEP-0352 Client State Indication: while a client says it is inactive, presence and chat states wait" }),
        max_held: Type.Integer({
          minimum: 1,
          maximum: 10000,
          default: 256,
          description: "Most stanzas held for one inactive session (after squashing superseded presence); one more flushes them all",
        }),
      },
      { default: {}, additionalProperties: false, description: "Client State Indication (XEP-0352); see src/modules/csi/README.md" },
    ),
    push: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: "Offer XEP-0357 push notifications: clients register an app server that is told when a message waits for them" }),
        include_body: Type.Boolean({
          default: false,
          description: "Allow `last-message-body` in notifications to clients that ask for it when enabling (the body then crosses the app server and the phone vendor's push service)",
        }),
        max_per_account: Type.Integer({ minimum: 1, maximum: 100, default: 10, description: "Most registrations (app server and node) one account keeps; enabling one more drops the oldest" }),
        min_interval_ms: Type.Integer({
          minimum: 0,
          maximum: 3600000,
          default: 2000,
          description: "Shortest time between two notifications to one registration; messages arriving meanwhile are folded into the next one",
        }),
        retries: Type.Integer({ minimum: 0, maximum: 10, default: 3, description: "Retries of a notification the app server could not take for a passing reason (timeout, unreachable, wait errors)" }),
        retry_base_ms: Type.Integer({ minimum: 100, maximum: 600000, default: 5000, description: "Delay before the first retry; each further retry waits twice as long" }),
        timeout_ms: Type.Integer({ minimum: 1000, maximum: 300000, default: 30000, description: "How long to wait for the app server's answer to one notification" }),
        max_failures: Type.Integer({
          minimum: 1,
          maximum: 1000,
          default: 3,
          description: "Notifications in a row that fail for good (after retries) before the registration is disabled",
        }),
      },
      { default: {}, additionalProperties: false, description: "Push notifications (XEP-0357); see src/modules/push/README.md" },
    ),
    pubsub: Type.Object(
      {
        max_item_bytes: Type.Integer({
          minimum: 1024,
          maximum: 1048576,
          default: 131072,
          description: "Largest payload of one published item, bytes (larger: not-acceptable + payload-too-big); avatars and OMEMO bundles fit",
        }),
        max_items_per_node: Type.Integer({
          minimum: 1,
          maximum: 10000,
          default: 256,
          description: "Most items one node keeps; pubsub#max_items may not exceed it and \"max\" means this value (Prosody: 256)",
        }),
        max_nodes_per_account: Type.Integer({
          minimum: 1,
          maximum: 10000,
          default: 128,
          description: "Most PEP nodes one account may have (more: resource-constraint + max-nodes-exceeded)",
        }),
        max_subscriptions_per_node: Type.Integer({
          minimum: 1,
          maximum: 100000,
          default: 256,
          description: "Most explicit subscriptions (and affiliations) of one node (more: policy-violation + too-many-subscriptions)",
        }),
        caps_cache_size: Type.Integer({
          minimum: 10,
          maximum: 1000000,
          default: 2000,
          description: "Verified entity capabilities (XEP-0115 ver strings) remembered for +notify interest; least recently used dropped",
        }),
        max_tracked_resources: Type.Integer({
          minimum: 100,
          maximum: 10000000,
          default: 100000,
          description: "Most available full JIDs whose capabilities PEP tracks at once; the oldest are forgotten beyond it",
        }),
        caps_timeout_ms: Type.Integer({ minimum: 500, maximum: 120000, default: 10000, description: "How long to wait for a client's disco#info answer to its caps" }),
      },
      { default: {}, additionalProperties: false, description: "Publish-subscribe (XEP-0060) and PEP (XEP-0163) on every account" },
    ),
    vcard: Type.Object(
      { max_size: Type.Integer({ minimum: 1024, default: 131072, description: "Largest vCard (XEP-0054) or private XML document (XEP-0049) stored, bytes" }) },
      { default: {}, additionalProperties: false, description: "Per-user documents: vcard-temp and private XML storage" },
    ),
    buddies: Type.Object(
      {
        reciprocate: Type.Boolean({ default: true, description: "Subscribe back after an admin approves a peer (XEP-0267 SHOULD)" }),
        max_pending: Type.Integer({
          minimum: 1,
          default: 100,
          description: "Most inbound trust requests waiting for an admin, per host; further requests from new peers are dropped (and logged)",
        }),
        notify_admins: Type.Boolean({ default: true, description: "Send every admin JID a message when a peer asks for trust or revokes it" }),
        disco_timeout_ms: Type.Integer({
          minimum: 100,
          default: 15000,
          description: "How long to wait for a peer's disco#info answer (does it implement server rosters?) before recording it as unknown",
        }),
      },
      { default: {}, additionalProperties: false, description: "Server rosters (XEP-0267)" },
    ),
    federation: Type.Object(
      {
        policy: Type.Union([Type.Literal("open"), Type.Literal("buddies-only")], {
          default: "open",
          description: "`buddies-only`: s2s only with approved peers (the trust handshake itself is still allowed)",
        }),
        trusted_limits: Type.Object(
          {
            max_stanza_size: Type.Optional(
              Type.Integer({ minimum: 1024, description: "Largest stanza accepted from a trusted peer, bytes (default: s2s.max_stanza_size)" }),
            ),
          },
          { default: {}, additionalProperties: false, description: "Limits for peers our admins trust (server roster `trusts()`), set when a link authenticates" },
        ),
        untrusted_limits: Type.Object(
          {
            max_stanza_size: Type.Optional(
              Type.Integer({ minimum: 1024, description: "Largest stanza accepted from other peers, bytes (default: s2s.max_stanza_size)" }),
            ),
          },
          { default: {}, additionalProperties: false, description: "Limits for every other peer, set when a link authenticates" },
        ),
      },
      { default: {}, additionalProperties: false, description: "Which peers may connect" },
    ),
    incidents: Type.Object(
      {
        untrusted: Type.Union([Type.Literal("refuse"), Type.Literal("hold")], {
          default: "refuse",
          description: "XEP-0268 interactions from peers we do not trust: `refuse` (forbidden) or `hold` (stored for an admin to review)",
        }),
      },
      { default: {}, additionalProperties: false, description: "Incident handling between servers (XEP-0268)" },
    ),
    log: Type.Object(
      {
        level: Type.Union(["trace", "debug", "info", "warn", "error", "fatal"].map((l) => Type.Literal(l)), { default: "info", description: "Least severe level written" }),
        format: Type.Union([Type.Literal("json"), Type.Literal("pretty")], { default: "json", description: "`json` (one object per line) or `pretty` (human-readable)" }),
      },
      { default: {}, additionalProperties: false, description: "Logging (to stdout)" },
    ),
    control_socket: Type.Optional(Type.String({ description: "Unix socket the CLI uses to reach the running server (default data_dir/comity.sock)" })),
    server_info: Type.Object(
      {
        name: Type.String({ default: "Comity", description: "Software name in XEP-0092 answers" }),
        hide_os: Type.Boolean({ default: false, description: "Omit the operating system from XEP-0092 answers" }),
      },
      { default: {}, additionalProperties: false, description: "Software version answers (XEP-0092)" },
    ),
  },
  { additionalProperties: false },
);

export type Config = Static<typeof ConfigSchema>;
export type HostConfig = Static<typeof HostSchema>;
