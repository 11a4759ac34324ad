// Configuration schema (TypeBox: one object gives the TypeScript type, the validator and the docs table).
// Key names follow ../shared/DESIGN.md "Operator interface"; they are part of the stable interface.
import { Type, type Static } from "@sinclair/typebox";

const ListenAddr = Type.String({
  description: "Address and port, `host:port` or `[v6]:port`",
  pattern: "^(\\[[0-9a-fA-F:.]+\\]|[^\\s:\\[\\]]+):[0-9]{1,5}$",
});

const ContactList = Type.Array(Type.String({ minLength: 1 }), { default: [], description: "URIs for this role" });

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
        },
        { additionalProperties: false, description: "Multi-user chat service (XEP-0045) on its own domain; absent: no chat rooms. Persistent rooms are stored (history is not)" },
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
    c2s: Type.Object(
      {
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
      },
      { default: {}, additionalProperties: false, description: "Server-to-server connections (federation)" },
    ),
    http: Type.Object(
      {
        listen: Type.Array(ListenAddr, { default: [], description: "HTTP listeners: WebSocket /xmpp-websocket, /admin, /api" }),
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
