/**
 * The fault state of one simulated network, in a SharedArrayBuffer that the
 * main thread writes (connect, disconnect, crash, modes) and every peer
 * worker reads before sending and on delivery. Counters are updated by the
 * workers with Atomics, so no peer traffic passes through the main thread.
 */
const FLAG_RELIABLE = 0;
const FLAG_LONG_DELAYS = 1;
const FLAG_LONG_REORDERING = 2;
const FLAG_SHUTDOWN = 3;
const TOTAL_COUNT = 4;
const HEADER = 8;

export class FaultState {
  readonly n: number;
  readonly sab: SharedArrayBuffer;
  private readonly i32: Int32Array;
  private readonly bytes: BigInt64Array;
  private readonly incOff: number;
  private readonly countOff: number;
  private readonly garbageOff: number;
  private readonly enabledOff: number;

  constructor(n: number, sab?: SharedArrayBuffer) {
    this.n = n;
    this.incOff = HEADER;
    this.countOff = this.incOff + n;
    this.garbageOff = this.countOff + n;
    this.enabledOff = this.garbageOff + n;
    const ints = this.enabledOff + n * n;
    const bytesOff = Math.ceil((ints * 4) / 8) * 8;
    this.sab = sab ?? new SharedArrayBuffer(bytesOff + 8);
    this.i32 = new Int32Array(this.sab, 0, ints);
    this.bytes = new BigInt64Array(this.sab, bytesOff, 1);
    if (!sab) Atomics.store(this.i32, FLAG_RELIABLE, 1);
  }

  get reliable(): boolean {
    return Atomics.load(this.i32, FLAG_RELIABLE) === 1;
  }
  set reliable(v: boolean) {
    Atomics.store(this.i32, FLAG_RELIABLE, v ? 1 : 0);
  }
  get longDelays(): boolean {
    return Atomics.load(this.i32, FLAG_LONG_DELAYS) === 1;
  }
  set longDelays(v: boolean) {
    Atomics.store(this.i32, FLAG_LONG_DELAYS, v ? 1 : 0);
  }
  get longReordering(): boolean {
    return Atomics.load(this.i32, FLAG_LONG_REORDERING) === 1;
  }
  set longReordering(v: boolean) {
    Atomics.store(this.i32, FLAG_LONG_REORDERING, v ? 1 : 0);
  }
  get shutdown(): boolean {
    return Atomics.load(this.i32, FLAG_SHUTDOWN) === 1;
  }
  set shutdown(v: boolean) {
    Atomics.store(this.i32, FLAG_SHUTDOWN, v ? 1 : 0);
  }

  /** The incarnation installed as server `peer`, 0 when none is (crashed). */
  incarnation(peer: number): number {
    return Atomics.load(this.i32, this.incOff + peer);
  }
  setIncarnation(peer: number, inc: number): void {
    Atomics.store(this.i32, this.incOff + peer, inc);
  }

  /** Is the end from `from` (its current incarnation) to `to` enabled? */
  enabled(from: number, to: number): boolean {
    return Atomics.load(this.i32, this.enabledOff + from * this.n + to) === 1;
  }
  setEnabled(from: number, to: number, on: boolean): void {
    Atomics.store(this.i32, this.enabledOff + from * this.n + to, on ? 1 : 0);
  }

  countRpc(): void {
    Atomics.add(this.i32, TOTAL_COUNT, 1);
  }
  addBytes(n: number): void {
    Atomics.add(this.bytes, 0, BigInt(n));
  }
  totalCount(): number {
    return Atomics.load(this.i32, TOTAL_COUNT);
  }
  totalBytes(): number {
    return Number(Atomics.load(this.bytes, 0));
  }

  /** Handler invocations on the current incarnation of `peer`. */
  rpcCount(peer: number): number {
    return Atomics.load(this.i32, this.countOff + peer);
  }
  countHandled(peer: number): void {
    Atomics.add(this.i32, this.countOff + peer, 1);
  }
  resetCount(peer: number): void {
    Atomics.store(this.i32, this.countOff + peer, 0);
  }

  /** Undecodable or unknown messages a peer dropped. */
  garbage(peer: number): number {
    return Atomics.load(this.i32, this.garbageOff + peer);
  }
  countGarbage(peer: number): void {
    Atomics.add(this.i32, this.garbageOff + peer, 1);
  }
}
