import { join } from 'node:path';
import { parseArgs } from 'node:util';

export interface JobOptions {
  clients: number;
  seconds: number;
  dataDir: string;
}

/** Print the problem and exit 2 (a usage error). */
export function usageError(msg: string): never {
  console.error(msg);
  process.exit(2);
}

/**
 * The main jobs' flags: --clients N, --seconds S, --data DIR and --help,
 * each checked against its range (a bad one exits 2 with the usage).
 * Without --data, a new directory data/<prefix>-<time>.
 */
export function jobOptions(usage: string, clients: [number, number, number], seconds: [number, number, number], dataPrefix: string): JobOptions {
  let parsed;
  try {
    parsed = parseArgs({ options: { clients: { type: 'string' }, seconds: { type: 'string' }, data: { type: 'string' }, help: { type: 'boolean' } } });
  } catch (e) {
    usageError(`${(e as Error).message}\n${usage}`);
  }
  if (parsed.values.help) {
    console.log(usage);
    process.exit(0);
  }
  const int = (name: string, raw: string | undefined, [def, lo, hi]: [number, number, number]): number => {
    if (raw === undefined) return def;
    const v = Number(raw);
    if (!Number.isInteger(v) || v < lo || v > hi) usageError(`--${name} must be an integer in [${lo}, ${hi}], got ${raw}\n${usage}`);
    return v;
  };
  return {
    clients: int('clients', parsed.values.clients, clients),
    seconds: int('seconds', parsed.values.seconds, seconds),
    dataDir: parsed.values.data ?? join('data', `${dataPrefix}-${new Date().toISOString().replace(/[:.]/g, '-')}`),
  };
}
