// Row shapes that SQLite and PostgreSQL return identically (same column names and JavaScript types), and their
// mapping to the storage records, so that both backends read them one way. Rows whose types differ (booleans as
// 0/1 in SQLite, jsonb and arrays in PostgreSQL) stay with their backend.
import type { IncidentRecord } from "./types.ts";

/** An `incidents` row (migration 4). */
export interface IncidentRow {
  id: number;
  host: string;
  peer: string;
  direction: "in" | "out";
  kind: IncidentRecord["kind"];
  incident_id: string | null;
  status: IncidentRecord["status"];
  payload: string;
  at: number;
  note: string | null;
}

export function toIncident(r: IncidentRow): IncidentRecord {
  return { id: r.id, host: r.host, peer: r.peer, direction: r.direction, kind: r.kind, incidentId: r.incident_id, status: r.status, payload: r.payload, at: r.at, note: r.note };
}

/** An `archive_messages` row as the archive queries select it (migration 5). */
export interface ArchiveRow {
  id: number;
  with_jid: string;
  direction: "in" | "out";
  stanza: string;
  stamp: number;
}
