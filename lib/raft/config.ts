import { MAX_PEER_ID, RaftOptionError, type ClusterConfig, type PeerId } from './types.js';

/**
 * Cluster configurations (thesis chapter 4): their wire form in a Config
 * entry, checks, and single-server changes. A change adds a learner,
 * promotes a learner to voter, or removes a member; each differs from the
 * configuration before it by one server, so any majority of the old voters
 * and any majority of the new ones share a server (thesis 4.1), provided
 * only one change is in flight at a time.
 */

export type ConfigChange =
  | { type: 'addLearner'; id: PeerId; context?: string }
  | { type: 'promote'; id: PeerId }
  | { type: 'remove'; id: PeerId };

/** Why a change was refused; the configuration is unchanged. */
export type ConfigRefusal = 'not-leader' | 'in-progress' | 'already-member' | 'not-member' | 'not-learner' | 'last-voter';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeConfig(c: ClusterConfig): Uint8Array {
  return encoder.encode(JSON.stringify(c.context ? { v: c.voters, l: c.learners, c: c.context } : { v: c.voters, l: c.learners }));
}

/** The configuration a Config entry holds; throws on bytes that are not one. */
export function decodeConfig(data: Uint8Array): ClusterConfig {
  let raw: { v?: unknown; l?: unknown; c?: unknown };
  try {
    raw = JSON.parse(decoder.decode(data)) as typeof raw;
  } catch {
    throw new Error('a config entry that is not JSON');
  }
  const c: ClusterConfig = { voters: raw.v as PeerId[], learners: raw.l as PeerId[] };
  if (raw.c !== undefined) c.context = raw.c as Record<string, string>;
  const problem = configProblem(c);
  if (problem) throw new Error(`a bad config entry: ${problem}`);
  return c;
}

/** What is wrong with a configuration, or undefined. */
export function configProblem(c: ClusterConfig, allowEmpty = false): string | undefined {
  if (typeof c !== 'object' || c === null) return 'not an object';
  const ids = (list: unknown, what: string): string | undefined => {
    if (!Array.isArray(list)) return `${what} is not a list`;
    for (let k = 0; k < list.length; k++) {
      const v: unknown = list[k];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > MAX_PEER_ID) return `${what} holds ${String(v)}, not a peer id`;
      if (k > 0 && (list[k - 1] as number) >= v) return `${what} is not sorted without repeats`;
    }
    return undefined;
  };
  const bad = ids(c.voters, 'voters') ?? ids(c.learners, 'learners');
  if (bad) return bad;
  if (c.voters.length === 0 && !allowEmpty) return 'no voters';
  for (const l of c.learners) if (c.voters.includes(l)) return `${l} is both a voter and a learner`;
  if (c.context !== undefined) {
    if (typeof c.context !== 'object' || c.context === null || Array.isArray(c.context)) return 'context is not an object';
    for (const [k, v] of Object.entries(c.context)) {
      if (typeof v !== 'string') return `context of ${k} is not a string`;
      if (!c.voters.includes(Number(k)) && !c.learners.includes(Number(k))) return `context names ${k}, not a member`;
    }
  }
  return undefined;
}

/** The configuration a peer starts with: the given voters, or none for a peer that joins a running cluster. */
export function initialConfig(voters: PeerId[]): ClusterConfig {
  const sorted = [...new Set(voters)].sort((a, b) => a - b);
  const c: ClusterConfig = { voters: sorted, learners: [] };
  const problem = configProblem(c, true);
  if (problem) throw new RaftOptionError('voters', problem);
  return c;
}

function without(list: PeerId[], id: PeerId): PeerId[] {
  return list.filter((p) => p !== id);
}

function withId(list: PeerId[], id: PeerId): PeerId[] {
  return [...list, id].sort((a, b) => a - b);
}

/** The configuration after `change`, or why the change does not apply to `c`. */
export function applyChange(c: ClusterConfig, change: ConfigChange): ClusterConfig | ConfigRefusal {
  const isVoter = c.voters.includes(change.id);
  const isLearner = c.learners.includes(change.id);
  const context = { ...(c.context ?? {}) };
  let next: ClusterConfig;
  switch (change.type) {
    case 'addLearner':
      if (isVoter || isLearner) return 'already-member';
      next = { voters: c.voters, learners: withId(c.learners, change.id) };
      if (change.context !== undefined) context[change.id] = change.context;
      break;
    case 'promote':
      if (isVoter) return 'already-member';
      if (!isLearner) return 'not-learner';
      next = { voters: withId(c.voters, change.id), learners: without(c.learners, change.id) };
      break;
    case 'remove':
      if (!isVoter && !isLearner) return 'not-member';
      if (isVoter && c.voters.length === 1) return 'last-voter';
      next = { voters: without(c.voters, change.id), learners: without(c.learners, change.id) };
      delete context[change.id];
      break;
  }
  if (Object.keys(context).length > 0) next.context = context;
  return next;
}

/** Every member, voters and learners, sorted. */
export function membersOf(c: ClusterConfig): PeerId[] {
  return [...c.voters, ...c.learners].sort((a, b) => a - b);
}
