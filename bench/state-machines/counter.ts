// The benchmarks' state machine: a counter. A command is a number to add
// (the result is the new total) or 'get' (a read through the log); the
// query answers the total. `spinMicros` makes every add spend that much
// CPU, to show where apply work runs.
import type { StateMachine } from '../../lib/index.js';

export function createStateMachine(options: { spinMicros?: number } = {}): StateMachine<number | 'get', number, unknown, number> {
  const spinMs = (options.spinMicros ?? 0) / 1000;
  let total = 0;
  return {
    apply(cmd) {
      if (cmd === 'get') return total;
      if (spinMs > 0) {
        const until = performance.now() + spinMs;
        while (performance.now() < until);
      }
      total += cmd;
      return total;
    },
    query: () => total,
    snapshot: () => new TextEncoder().encode(String(total)),
    restore: (b) => {
      total = Number(new TextDecoder().decode(b));
    },
  };
}
