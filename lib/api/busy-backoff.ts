/**
 * The pause before asking a Busy peer again (flow control: nothing was
 * done, so asking again is safe): 1 ms, doubling up to 32 ms, so a burst
 * waits in its callers without spinning against the peer.
 */
export class BusyBackoff {
  private pause = 1;

  /** The next pause in ms (at most `leftMs`, never below 0). */
  next(leftMs = Infinity): number {
    const ms = Math.max(0, Math.min(this.pause, leftMs));
    this.pause = Math.min(2 * this.pause, 32);
    return ms;
  }
}
