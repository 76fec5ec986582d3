/**
 * The blocking graph from `pg_blocking_pids`: which sessions wait for which, and the root blockers
 * at the top of each chain (in A <- B <- C, A is named, not B).
 */
import type { LockChain, Session } from '../snapshot.js';

export function findLockChains(sessions: readonly Session[]): LockChain[] {
  const edges: { waiter: number; holder: number }[] = [];
  const holdersOf = new Map<number, number[]>();
  const waitersOf = new Map<number, number[]>();
  for (const s of sessions) {
    for (const holder of s.blockedBy) {
      edges.push({ waiter: s.pid, holder });
      holdersOf.set(s.pid, [...(holdersOf.get(s.pid) ?? []), holder]);
      waitersOf.set(holder, [...(waitersOf.get(holder) ?? []), s.pid]);
    }
  }
  if (edges.length === 0) return [];
  // A root holds locks others wait for and waits for nobody itself. In a cycle (a deadlock the
  // server has not broken yet) nobody qualifies: then the oldest member of the cycle stands in.
  const roots = [...waitersOf.keys()].filter((pid) => !holdersOf.has(pid));
  const covered = new Set<number>();
  const chains: LockChain[] = [];
  const addChain = (root: number) => {
    const { blocked, depth } = walkDown(root, waitersOf);
    for (const pid of blocked) covered.add(pid);
    covered.add(root);
    const members = new Set([root, ...blocked]);
    chains.push({
      rootPid: root,
      blockedPids: [...blocked].sort((a, b) => a - b),
      depth,
      edges: edges.filter((e) => members.has(e.waiter) && members.has(e.holder)),
    });
  };
  for (const root of roots) addChain(root);
  const order = new Map(sessions.map((s, i) => [s.pid, i]));
  const leftovers = [...waitersOf.keys()].filter((pid) => !covered.has(pid));
  leftovers.sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0));
  for (const pid of leftovers) if (!covered.has(pid)) addChain(pid);
  return chains.sort((a, b) => b.blockedPids.length - a.blockedPids.length || b.depth - a.depth);
}

function walkDown(root: number, waitersOf: Map<number, number[]>): { blocked: Set<number>; depth: number } {
  const blocked = new Set<number>();
  let depth = 0;
  let frontier = [root];
  while (frontier.length > 0) {
    const next: number[] = [];
    for (const pid of frontier) {
      for (const waiter of waitersOf.get(pid) ?? []) {
        if (waiter === root || blocked.has(waiter)) continue;
        blocked.add(waiter);
        next.push(waiter);
      }
    }
    if (next.length > 0) depth++;
    frontier = next;
  }
  return { blocked, depth };
}
