// Fuzz: malformed, wrongly-typed and out-of-range frames of every message
// type (Vote, VoteResponse, Append, AppendResponse, Snapshot,
// SnapshotResponse, ReadIndex, ReadIndexResponse, TimeoutNow, Forward,
// ForwardReply), a term of MAX_SAFE_INTEGER among them, posted straight
// into the live peers of a 3-peer lab cluster, while it is steady and while
// it elects. The frames carry the receivers' real incarnations, so the lab
// network's fence admits them and they reach the codec and the core. The
// cluster must keep electing (a crashed or cut-off leader is replaced in a
// higher term) and committing, no peer may die, every term stays within
// MAX_TERM (restarted peers too: terms are persisted), and the drop count
// must rise by every frame the receiver must refuse. The frames come from
// one fixed seed; the cluster's timing is real, so which state each frame
// meets is not.
import t from 'tap';
import { Packr } from 'msgpackr';
import type { MessagePort } from 'node:worker_threads';
import { Config, sleep } from '../../lib/testing/index.js';
import { MAX_INDEX, MAX_TERM, MAX_TERM_JUMP, MessageType, randInt, seededRng, type Rng } from '../../lib/raft/index.js';
import { HostMessageType } from '../../lib/node/messages.js';
import { Status } from '../../lib/node/outcome.js';
import { unpackBatch } from '../../lib/transport/codec.js';
import { ALL_TYPES, RAFT_TYPES, TYPE_NAME, allMutations, validFrame, type Mutation, type WireType } from './bad-frames.js';

const SEED = 0x5eedf022;
const PEERS = 3;
/** Each round: a burst while steady, then the leader is cut off or crashed and a burst meets the election. */
const ROUNDS = 4;
/** Frames of each type, each broken in one randomly chosen way, per peer and burst. */
const PER_TYPE = 6;
/** Bursts while the cluster elects, this far apart (an election timeout is 500-1000 ms). */
const ELECTION_WAVES = 5;
const WAVE_MS = 150;

const packr = new Packr({ useRecords: false, moreTypes: false });

/** What one peer should count from one burst. */
interface Expect {
  /** Frames it must refuse whatever its state: undecodable, misaddressed, out of range, a term jump. */
  certain: number;
  /** Well-formed frames that contradict the leader's state: refused if it still leads that term when they arrive. */
  maybe: number;
  /** Well-formed frames it ignores without counting (answers nobody waits for). */
  harmless: number;
}

class Fuzzer {
  private readonly mailboxes: (MessagePort | undefined)[] = new Array(PEERS).fill(undefined);
  private readonly mailboxInc: number[] = new Array(PEERS).fill(0);
  /** Per peer: the garbage count at the start, and what all bursts so far must have added. */
  private readonly garbage0: number[];
  private readonly expected: Expect[] = Array.from({ length: PEERS }, () => ({ certain: 0, maybe: 0, harmless: 0 }));
  readonly byType = new Map<string, number>();
  posts = 0;
  frames = 0;

  constructor(
    private readonly cfg: Config,
    private readonly rng: Rng,
    private readonly t: Tap,
  ) {
    this.garbage0 = Array.from({ length: PEERS }, (_, i) => cfg.cluster.faults.garbage(i));
  }

  private count(type: WireType | 'junk'): void {
    const name = type === 'junk' ? 'junk bytes' : TYPE_NAME[type];
    this.byType.set(name, (this.byType.get(name) ?? 0) + 1);
  }

  private async mailbox(i: number): Promise<MessagePort | undefined> {
    const inc = this.cfg.cluster.incarnation(i);
    if (!this.cfg.cluster.isRunning(i)) return undefined;
    if (this.mailboxes[i] && this.mailboxInc[i] === inc) return this.mailboxes[i];
    this.mailboxes[i]?.close();
    this.mailboxes[i] = await this.cfg.cluster.openMailbox(i);
    this.mailboxInc[i] = inc;
    return this.mailboxes[i];
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[randInt(this.rng, 0, xs.length - 1)]!;
  }

  private async terms(): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < PEERS; i++) if (this.cfg.cluster.isRunning(i)) out.push((await this.cfg.getState(i)).term);
    return out;
  }

  /**
   * Post a burst to every running peer. With `leader` (>= 0, in `leaderTerm`)
   * the leader also gets answers beyond its log, rounds it never sent and
   * AppendEntries from a second leader of its term.
   */
  async burst(label: string, leader: number): Promise<void> {
    const cfg = this.cfg;
    const f = cfg.cluster.faults;
    const terms = await this.terms();
    const top = Math.max(...terms);
    const leaderState = leader >= 0 ? await cfg.cluster.status(leader) : undefined;
    const summary: string[] = [];
    for (let to = 0; to < PEERS; to++) {
      const port = await this.mailbox(to);
      if (!port) continue;
      const st = await cfg.cluster.status(to);
      const e: Expect = { certain: 0, maybe: 0, harmless: 0 };
      const frames: unknown[][] = [];
      const others = [0, 1, 2].filter((p) => p !== to);
      const base = (type: WireType, term = Math.max(1, top - 1 + randInt(this.rng, 0, 2))) => {
        const from = this.pick(others);
        return validFrame(type, { peers: PEERS, from, to, fromInc: f.incarnation(from), toInc: f.incarnation(to), term }, this.rng);
      };
      for (const type of ALL_TYPES) {
        for (let k = 0; k < PER_TYPE; k++) {
          const frame = base(type);
          const muts: Mutation[] = [
            ...allMutations(type, frame, PEERS),
            { why: 'to another peer', apply: (fr) => void (fr[5] = this.pick(others)) },
            { why: 'from the receiver itself', apply: (fr) => void (fr[4] = to) },
          ];
          this.pick(muts).apply(frame);
          // Now and then a second break in another field.
          if (this.rng() < 0.3) this.pick(muts).apply(frame);
          frames.push(frame);
          e.certain++;
          this.count(type);
        }
        // The observed bug: a term with no room to grow.
        const huge = base(type);
        huge[3] = Number.MAX_SAFE_INTEGER;
        frames.push(huge);
        e.certain++;
        this.count(type);
      }
      // Well-formed, every field in range, but the term is further ahead than any peer may jump (MAX_TERM itself too).
      for (const type of RAFT_TYPES) {
        for (const term of [top + MAX_TERM_JUMP + 1 + randInt(this.rng, 0, 1000), MAX_TERM]) {
          frames.push(base(type, term));
          e.certain++;
          this.count(type);
        }
      }
      // Answers nobody waits for: ignored, not counted.
      frames.push([f.incarnation(others[0]!), f.incarnation(to), MessageType.ReadIndexResponse, top, others[0], to, 10 ** 12 + randInt(this.rng, 0, 1000), 7]);
      frames.push([f.incarnation(others[1]!), f.incarnation(to), HostMessageType.ForwardReply, top, others[1], to, 10 ** 12 + randInt(this.rng, 0, 1000), Status.Ok, others[1], 3, new Uint8Array(1), '']);
      // A vote request claiming a huge log, of term 0 entries: never up to date, so never granted.
      frames.push([f.incarnation(others[0]!), f.incarnation(to), MessageType.Vote, terms[0] ?? top, others[0], to, MAX_INDEX, 0, false]);
      e.harmless += 3;
      this.count(MessageType.ReadIndexResponse);
      this.count(HostMessageType.ForwardReply);
      this.count(MessageType.Vote);
      if (leaderState && to === leader) {
        const lt = leaderState.term;
        const last = leaderState.lastIndex;
        for (const from of others) {
          const head = [f.incarnation(from), f.incarnation(to)];
          frames.push([...head, MessageType.AppendResponse, lt, from, to, true, last + 1000 + randInt(this.rng, 0, 1000), 0, 0, 0]);
          frames.push([...head, MessageType.AppendResponse, lt, from, to, true, MAX_INDEX, 0, 0, 0]);
          frames.push([...head, MessageType.AppendResponse, lt, from, to, false, last + 50, 0, last + 50, 0]);
          frames.push([...head, MessageType.AppendResponse, lt, from, to, true, 0, 0, 0, 10 ** 9]);
          frames.push([...head, MessageType.SnapshotResponse, lt, from, to, last + 1000]);
          frames.push([...head, MessageType.Append, lt, from, to, 0, 0, 0, [], 0]);
          frames.push([...head, MessageType.Snapshot, lt, from, to, 0, 0, new Uint8Array(0), null]);
          frames.push([...head, MessageType.TimeoutNow, lt, from, to]);
          e.maybe += 8;
          for (const type of [4, 4, 4, 4, 6, 3, 5, 9] as WireType[]) this.count(type);
        }
      }
      // Shuffle, then post in batches of 1-8 frames (a batch is one message on the port).
      for (let k = frames.length - 1; k > 0; k--) {
        const j = randInt(this.rng, 0, k);
        [frames[k], frames[j]] = [frames[j]!, frames[k]!];
      }
      for (let k = 0; k < frames.length; ) {
        const n = randInt(this.rng, 1, 8);
        const batch = Buffer.concat(frames.slice(k, k + n).map((fr) => packr.pack(fr)));
        port.postMessage(batch);
        this.posts++;
        k += n;
      }
      this.frames += frames.length;
      // Junk of its own: not bytes, a truncated frame, random bytes.
      port.postMessage('not even bytes');
      e.certain++;
      this.count('junk');
      const whole = packr.pack(base(MessageType.Append));
      const cut = whole.subarray(0, Math.max(1, whole.length >> 1));
      if (batchThrows(cut)) {
        port.postMessage(new Uint8Array(cut));
        e.certain++;
        this.count('junk');
      }
      for (let k = 0; k < 4; k++) {
        const junk = Uint8Array.from({ length: randInt(this.rng, 1, 40) }, () => randInt(this.rng, 0, 255));
        const n = junkCount(junk);
        if (n === undefined) continue;
        port.postMessage(junk);
        e.certain += n;
        this.count('junk');
      }
      this.posts += 6;
      const x = this.expected[to]!;
      x.certain += e.certain;
      x.maybe += e.maybe;
      x.harmless += e.harmless;
      summary.push(`peer ${to} (${st.role}, term ${st.term}): ${e.certain} certain, ${e.maybe} maybe, ${e.harmless} harmless`);
    }
    this.t.comment(`${label}: ${summary.join('; ')}`);
    // The drops happen in the workers: wait until each peer has counted at least what it must.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && this.short().length > 0) await sleep(20);
    this.t.same(this.short(), [], `${label}: every peer counted every frame it must refuse`);
  }

  /** Peers (running ones) whose garbage count is below what they must have counted. */
  private short(): string[] {
    const out: string[] = [];
    for (let i = 0; i < PEERS; i++) {
      const got = this.cfg.cluster.faults.garbage(i) - this.garbage0[i]!;
      if (got < this.expected[i]!.certain) out.push(`peer ${i}: ${got} < ${this.expected[i]!.certain}`);
    }
    return out;
  }

  /** Every peer that should run does and answers; every term within MAX_TERM; no more garbage than frames. */
  async checkHealthy(label: string): Promise<void> {
    const t = this.t;
    for (let i = 0; i < PEERS; i++) {
      t.ok(this.cfg.cluster.isRunning(i), `${label}: peer ${i} runs`);
      const st = await this.cfg.cluster.status(i);
      t.ok(st.term <= MAX_TERM, `${label}: peer ${i}'s term ${st.term} is within MAX_TERM`);
      t.equal(st.garbage, this.cfg.cluster.faults.garbage(i), `${label}: peer ${i} reports its count in its status`);
      const got = st.garbage - this.garbage0[i]!;
      const x = this.expected[i]!;
      t.ok(got >= x.certain && got <= x.certain + x.maybe, `${label}: peer ${i} counted ${got}, within [${x.certain}, ${x.certain + x.maybe}]`);
    }
  }

  total(): { got: number; certain: number; maybe: number; harmless: number } {
    let got = 0;
    const sum = { certain: 0, maybe: 0, harmless: 0 };
    for (let i = 0; i < PEERS; i++) {
      got += this.cfg.cluster.faults.garbage(i) - this.garbage0[i]!;
      sum.certain += this.expected[i]!.certain;
      sum.maybe += this.expected[i]!.maybe;
      sum.harmless += this.expected[i]!.harmless;
    }
    return { got, ...sum };
  }

  close(): void {
    for (const p of this.mailboxes) p?.close();
  }
}

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

function batchThrows(bytes: Uint8Array): boolean {
  try {
    unpackBatch(bytes);
    return false;
  } catch {
    return true;
  }
}

/**
 * How many drops random bytes cost a peer: one if msgpack cannot split them,
 * else one per value, when no value could be a frame (an array of six or
 * more items); undefined (not posted) otherwise.
 */
function junkCount(bytes: Uint8Array): number | undefined {
  let values: unknown[];
  try {
    values = unpackBatch(bytes);
  } catch {
    return 1;
  }
  if (values.length === 0 || values.some((v) => Array.isArray(v) && v.length >= 6)) return undefined;
  return values.length;
}

t.test('message fuzz: bad frames of every type into live peers; the cluster keeps electing and committing', async (t) => {
  const started = Date.now();
  const cfg = await Config.make(PEERS, false, false, { log: (l) => t.comment(l), seed: SEED });
  t.comment(`fuzz seed ${SEED}`);
  const fuzz = new Fuzzer(cfg, seededRng(SEED), t);
  let cmd = 100;
  await cfg.run(async () => {
    await cfg.one(cmd++, PEERS, true);
    for (let round = 0; round < ROUNDS; round++) {
      const leader = await cfg.checkOneLeader();
      const term0 = (await cfg.getState(leader)).term;
      await fuzz.burst(`round ${round}, steady (leader ${leader}, term ${term0})`, leader);
      await cfg.one(cmd++, PEERS, true);
      await fuzz.checkHealthy(`round ${round}, after the steady burst`);

      // Take the leader away, and fuzz everybody (the old leader too) while they elect.
      const crash = round % 2 === 1;
      if (crash) await cfg.crash1(leader);
      else cfg.disconnect(leader);
      for (let w = 0; w < ELECTION_WAVES; w++) {
        await fuzz.burst(`round ${round}, electing, wave ${w} (leader ${leader} ${crash ? 'crashed' : 'cut off'})`, -1);
        await sleep(WAVE_MS);
      }
      const leader2 = await cfg.checkOneLeader();
      const term1 = (await cfg.getState(leader2)).term;
      t.not(leader2, leader, `round ${round}: a new leader, peer ${leader2}`);
      t.ok(term1 > term0, `round ${round}: elected in a higher term (${term1} > ${term0})`);
      await cfg.one(cmd++, PEERS - 1, true);

      // Bring the old leader back (a crashed one restarts from its persisted state) and commit on all three.
      if (crash) await cfg.start1(leader);
      cfg.connect(leader);
      await cfg.one(cmd++, PEERS, true);
      await fuzz.checkHealthy(`round ${round}, healed`);
    }
  });
  fuzz.close();
  const total = fuzz.total();
  t.ok(total.got >= total.certain, `the drop count rose by ${total.got} (at least the ${total.certain} frames that must be refused)`);
  t.comment(`frames by type: ${[...fuzz.byType].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  t.comment(
    `${fuzz.frames} frames and ${fuzz.posts} posts; dropped and counted ${total.got} ` +
      `(${total.certain} certain, up to ${total.maybe} more against the leader's state, ${total.harmless} ignored as harmless); ` +
      `${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
});
