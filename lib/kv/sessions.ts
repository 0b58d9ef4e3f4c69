/** A client's latest applied command and its result. */
export interface Session<R> {
  seq: number;
  result: R;
}

/**
 * A duplicate table: per client, the sequence number and result of its
 * latest applied command. Clients run one command at a time with
 * increasing sequence numbers, so a command at or below the latest is a
 * retry: the latest is answered with its stored result, an older one (its
 * client stopped waiting for it long ago) with `older`.
 */
export class Sessions<R> {
  private readonly byClient = new Map<number, Session<R>>();

  /** The answer for a command already applied, or undefined for a new one. */
  seen(clientId: number, seq: number, older: R): R | undefined {
    const s = this.byClient.get(clientId);
    if (!s || seq > s.seq) return undefined;
    return seq === s.seq ? s.result : older;
  }

  /** Record a client's newly applied command (one object per client, updated in place). */
  record(clientId: number, seq: number, result: R): void {
    const s = this.byClient.get(clientId);
    if (s) {
      s.seq = seq;
      s.result = result;
    } else this.byClient.set(clientId, { seq, result });
  }

  /** Take in an entry from elsewhere, keeping the newer of the two. */
  mergeEntry(clientId: number, seq: number, result: R): void {
    const s = this.byClient.get(clientId);
    if (!s || s.seq < seq) this.record(clientId, seq, result);
  }

  entries(): IterableIterator<[number, Session<R>]> {
    return this.byClient.entries();
  }

  clear(): void {
    this.byClient.clear();
  }
}
