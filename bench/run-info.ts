import { execFileSync } from 'node:child_process';
import { cpus, release, totalmem } from 'node:os';

/** The commit the bench runs at ("(modified)" when tracked files differ), for its JSON. */
export function commit(): string | undefined {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${sha} (modified)` : sha;
  } catch {
    return undefined;
  }
}

/** The machine a bench ran on. */
export function machineInfo(): { cpus: number; cpu: string | undefined; memGiB: number; kernel: string; node: string } {
  return { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), kernel: release(), node: process.version };
}
