import { decodeCommand, decodeRequests, encodeCommand, encodeReply } from './protocol.js';
import { KvStateMachine, isCommand, parseCommand, type KvResult } from './state-machine.js';

/** What the key/value server needs from the Raft peer it sits on. */
export interface RaftHandle {
  propose(data: Uint8Array): { index: number; term: number } | undefined;
  currentTerm(): number;
  isLeader(): boolean;
  /** Hand Raft a snapshot of everything through `index`. */
  compact(index: number, data: Uint8Array): void;
}

export interface KvServerOptions {
  /** Snapshot once the persisted Raft state reaches this many bytes; -1: never. */
  maxRaftState: number;
  /** A request whose entry has not been applied by then is answered ErrWrongLeader (the clerk retries). */
  requestTimeoutMs?: number;
}

interface Pending {
  term: number;
  clientId: number;
  seq: number;
  answer: (r: KvResult) => void;
  timer: NodeJS.Timeout;
}

const WRONG_LEADER: KvResult = { err: 'ErrWrongLeader', value: '' };

/**
 * The key/value server inside a peer's worker. A request is checked, put
 * through the Raft log (Gets too, so a deposed or minority leader never
 * answers one), and answered once the entry at the index it was proposed at
 * is applied: with the state machine's result if the entry there is the
 * one proposed (same term), otherwise ErrWrongLeader. Losing leadership or
 * the term fails every waiting request at once; the clerk then retries
 * elsewhere, and the duplicate table keeps the retry from applying twice.
 */
export class KvServer {
  readonly sm = new KvStateMachine();
  private readonly pending = new Map<number, Pending>();
  /** The term all waiting requests were proposed in (one leadership). */
  private pendingTerm = -1;
  private appliedIndex = 0;
  private readonly timeoutMs: number;

  constructor(
    private readonly raft: RaftHandle,
    private readonly opts: KvServerOptions,
  ) {
    this.timeoutMs = opts.requestTimeoutMs ?? 1000;
  }

  /** A batch of requests from clerks; `reply` sends each answer back over the same channel. */
  handle(bytes: unknown, reply: (bytes: Uint8Array) => void): void {
    for (const req of decodeRequests(bytes)) this.handleOne(req.id, req.raw, reply);
  }

  private handleOne(id: number, raw: unknown, reply: (bytes: Uint8Array) => void): void {
    const cmd = parseCommand(raw);
    if (!isCommand(cmd)) {
      reply(encodeReply(id, cmd));
      return;
    }
    const placed = this.raft.propose(encodeCommand(cmd));
    if (!placed) {
      reply(encodeReply(id, WRONG_LEADER));
      return;
    }
    if (placed.term !== this.pendingTerm) this.failAll();
    this.pendingTerm = placed.term;
    // An older request waiting at this index lost its entry to this one.
    const older = this.pending.get(placed.index);
    if (older) this.fail(placed.index, older);
    const p: Pending = {
      term: placed.term,
      clientId: cmd.clientId,
      seq: cmd.seq,
      answer: (r) => reply(encodeReply(id, r)),
      timer: setTimeout(() => {
        if (this.pending.get(placed.index) === p) this.fail(placed.index, p);
      }, this.timeoutMs),
    };
    this.pending.set(placed.index, p);
  }

  /** Committed entries, in order. */
  applyEntries(entries: readonly { index: number; term: number; data: Uint8Array }[]): void {
    for (const e of entries) {
      if (e.index <= this.appliedIndex) continue;
      this.appliedIndex = e.index;
      const cmd = decodeCommand(e.data);
      const result = cmd ? this.sm.apply(cmd) : undefined;
      const p = this.pending.get(e.index);
      if (!p) continue;
      this.pending.delete(e.index);
      clearTimeout(p.timer);
      const ours = e.term === p.term && cmd !== undefined && cmd.clientId === p.clientId && cmd.seq === p.seq;
      p.answer(ours && result ? result : WRONG_LEADER);
    }
  }

  /** A snapshot from storage (on start) or from the leader replaces the state. */
  applySnapshot(index: number, data: Uint8Array): void {
    this.sm.restore(data);
    this.appliedIndex = index;
    // Requests whose entries the snapshot swallowed cannot learn their result here.
    for (const [i, p] of this.pending) if (i <= index) this.fail(i, p);
  }

  /**
   * After each round of Raft work: fail the waiting requests if this peer
   * lost its leadership, and snapshot once the persisted Raft state is too big.
   */
  afterDrain(raftStateBytes: number): void {
    if (this.pending.size > 0 && (!this.raft.isLeader() || this.raft.currentTerm() !== this.pendingTerm)) this.failAll();
    if (this.opts.maxRaftState > 0 && raftStateBytes >= this.opts.maxRaftState && this.appliedIndex > 0) {
      this.raft.compact(this.appliedIndex, this.sm.snapshot());
    }
  }

  /** Answer every waiting request ErrWrongLeader (leadership lost, or the peer stops). */
  failAll(): void {
    for (const [i, p] of this.pending) this.fail(i, p);
  }

  private fail(index: number, p: Pending): void {
    this.pending.delete(index);
    clearTimeout(p.timer);
    p.answer(WRONG_LEADER);
  }
}
