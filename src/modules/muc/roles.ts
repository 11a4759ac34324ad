// XEP-0045 §5: roles (per visit) and affiliations (per bare JID, lasting), their order, the default role an
// affiliation gives (§5.1.2), and who may change whose role or affiliation (§5.1.3, §5.2.2, §8, §9, §10).
import type { StanzaCondition } from "../../xmpp/errors.ts";

export type Role = "moderator" | "participant" | "visitor" | "none";
export type Affiliation = "owner" | "admin" | "member" | "none" | "outcast";

const ROLE_RANK: Record<Role, number> = { none: 0, visitor: 1, participant: 2, moderator: 3 };
const AFFILIATION_RANK: Record<Affiliation, number> = { outcast: -1, none: 0, member: 1, admin: 2, owner: 3 };

export function isRole(s: string | undefined): s is Role {
  return s !== undefined && Object.hasOwn(ROLE_RANK, s);
}

export function isAffiliation(s: string | undefined): s is Affiliation {
  return s !== undefined && Object.hasOwn(AFFILIATION_RANK, s);
}

/** Whether role `a` is at least `b` (moderator > participant > visitor > none). */
export function roleAtLeast(a: Role, b: Role): boolean {
  return ROLE_RANK[a] >= ROLE_RANK[b];
}

/** Whether affiliation `a` is at least `b` (owner > admin > member > none > outcast). */
export function affiliationAtLeast(a: Affiliation, b: Affiliation): boolean {
  return AFFILIATION_RANK[a] >= AFFILIATION_RANK[b];
}

/** §5.1.2: the role someone gets on entering, from the affiliation and whether the room is moderated. */
export function defaultRole(affiliation: Affiliation, moderated: boolean): Role {
  switch (affiliation) {
    case "owner":
    case "admin":
      return "moderator";
    case "member":
      return "participant";
    case "none":
      return moderated ? "visitor" : "participant";
    case "outcast":
      return "none";
  }
}

/** The one who asks, and the occupant or user concerned. */
export interface Party {
  role: Role;
  affiliation: Affiliation;
}

/**
 * §8.2 (kick), §8.3-8.5 (voice), §9.6-9.8 (moderator): why `actor` may not give `target` the role `role`, or
 * undefined when it may. Only moderators change roles; only admins and owners grant or revoke moderator; nobody
 * acts on someone of higher affiliation; voice is never taken from an admin or owner.
 */
export function roleChangeRefusal(actor: Party, target: Party, role: Role): StanzaCondition | undefined {
  if (actor.role !== "moderator") return "forbidden";
  if (role === "moderator" || target.role === "moderator") {
    if (!affiliationAtLeast(actor.affiliation, "admin")) return "forbidden";
  }
  if (AFFILIATION_RANK[target.affiliation] > AFFILIATION_RANK[actor.affiliation]) return "not-allowed";
  if (role === "visitor" && affiliationAtLeast(target.affiliation, "admin")) return "not-allowed";
  return undefined;
}

/**
 * §9 (admin use cases), §10.6-10.10 (owner lists): why `actor` may not change a user's affiliation from `current`
 * to `next`, or undefined when it may. Admins manage members and outcasts; only owners touch admins and owners;
 * nobody bans themselves (§9.1: conflict) and the last owner cannot step down (§10.7: conflict).
 */
export function affiliationChangeRefusal(
  actor: Affiliation,
  current: Affiliation,
  next: Affiliation,
  opts: { self: boolean; owners: number },
): StanzaCondition | undefined {
  if (!affiliationAtLeast(actor, "admin")) return "forbidden";
  if (actor !== "owner") {
    if (affiliationAtLeast(current, "admin")) return "not-allowed";
    if (affiliationAtLeast(next, "admin")) return "forbidden";
  }
  if (opts.self && next === "outcast") return "conflict";
  if (current === "owner" && next !== "owner" && opts.owners <= 1) return "conflict";
  return undefined;
}
