import { LabFailure, TEST_LIMIT_MS } from './config.js';

/**
 * A lab test's failure and time limit, shared by the harnesses: the first
 * failure wins (from the test body or from any task, such as a client or a
 * peer's error report), and `run` returns at once when one happens, or
 * when the 120 s limit passes, always after cleaning up.
 */
export class LabRun {
  private failure: Error | undefined;
  private rejectFailed!: (e: Error) => void;
  private readonly failed: Promise<never>;

  constructor() {
    this.failed = new Promise<never>((_, reject) => {
      this.rejectFailed = reject;
    });
    this.failed.catch(() => {});
  }

  /** The failure so far, if any. */
  get failedWith(): Error | undefined {
    return this.failure;
  }

  /** Fail the test (once; the first failure wins) without throwing here. */
  fail(message: string): LabFailure {
    const e = new LabFailure(message);
    if (!this.failure) {
      this.failure = e;
      this.rejectFailed(e);
    }
    return e;
  }

  /** Run `body`, failing at once on a failure or at the time limit, and always clean up. */
  async run(body: () => Promise<void>, cleanup: () => Promise<void>): Promise<void> {
    const watchdog = setTimeout(() => this.fail('test took longer than 120 seconds'), TEST_LIMIT_MS);
    try {
      await Promise.race([body(), this.failed]);
    } finally {
      clearTimeout(watchdog);
      await cleanup();
    }
    if (this.failure) throw this.failure;
  }
}
