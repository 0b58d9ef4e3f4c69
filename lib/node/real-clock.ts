import type { Clock, TimerHandle } from './seams.js';

/** The clock of a real thread: performance.now(), setTimeout, and setImmediate for the end of the turn. */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (t: TimerHandle) => clearTimeout(t as NodeJS.Timeout),
  defer: (fn) => {
    setImmediate(fn);
  },
};
