#!/usr/bin/env node
/**
 * The `actor-raft` command:
 *
 *   actor-raft certs --dir DIR [--host H ...] NAME ...   a development CA and certificates
 *   actor-raft serve --name NAME --initial-cluster ...     run one node (lib/cli/serve.ts)
 *   actor-raft get|put|append|status|members|transfer-leader ...
 *                                                         the client (lib/cli/client-commands.ts)
 *
 * `certs` writes DIR/ca.crt and DIR/ca.key (once; an existing CA is kept)
 * and a certificate and key per NAME (its common name), signed by that CA
 * and good for the given hosts (default localhost and 127.0.0.1). No file
 * is ever replaced. Exit 0 on success, 1 when something could not be done,
 * 2 on a usage error.
 */
import { parseArgs } from 'node:util';
import { CLIENT_COMMANDS, CLIENT_USAGE } from './client-commands.js';
import { SERVE_USAGE } from './serve.js';

const CERTS_USAGE = `usage: actor-raft certs --dir DIR [--host HOST ...] NAME [NAME ...]
  Make a development CA in DIR (kept if there is one) and a certificate per NAME
  for mutual TLS between nodes and clients; --host (repeatable) lists the DNS names
  and IP addresses the certificates are good for (default localhost and 127.0.0.1).`;

const USAGE = `${CERTS_USAGE}\n\n${SERVE_USAGE}\n\n${CLIENT_USAGE}`;

function usageError(msg: string, usage = USAGE): never {
  console.error(`${msg}\n${usage}`);
  process.exit(2);
}

async function certs(args: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: { dir: { type: 'string' }, host: { type: 'string', multiple: true }, help: { type: 'boolean' } } });
  } catch (e) {
    usageError((e as Error).message, CERTS_USAGE);
  }
  if (parsed.values.help) {
    console.log(CERTS_USAGE);
    return;
  }
  const dir = parsed.values.dir;
  if (!dir) usageError('--dir is required', CERTS_USAGE);
  if (parsed.positionals.length === 0) usageError('name at least one certificate', CERTS_USAGE);
  // Loaded only here: the X.509 library is for this helper, not for nodes and clients.
  const { writeDevCertificates } = await import('../tls/dev-ca.js');
  let written: string[];
  try {
    written = await writeDevCertificates(dir, parsed.positionals, parsed.values.host ? { hosts: parsed.values.host } : {});
  } catch (e) {
    if (e instanceof TypeError) usageError(e.message, CERTS_USAGE);
    console.error(`actor-raft certs: ${(e as Error).message}`);
    process.exit(1);
  }
  for (const f of written) console.log(`wrote ${f}`);
}

const [command, ...rest] = process.argv.slice(2);
if (command === 'certs') await certs(rest);
else if (command === 'serve') {
  if (rest.includes('--help')) console.log(SERVE_USAGE);
  else process.exitCode = await (await import('./serve.js')).serve(rest);
} else if (command !== undefined && command in CLIENT_COMMANDS) {
  if (rest.includes('--help')) console.log(CLIENT_USAGE);
  else process.exit(await (await import('./client-commands.js')).clientCommand(command, rest));
} else if (command === undefined || command === '--help' || command === 'help') console.log(USAGE);
else usageError(`unknown command ${JSON.stringify(command)}`);
