#!/usr/bin/env node
/**
 * The `actor-raft` command. Today it has one subcommand, `certs`, the
 * development CA helper:
 *
 *   actor-raft certs --dir DIR [--host H ...] NAME ...
 *
 * writes DIR/ca.crt and DIR/ca.key (once; an existing CA is kept) and a
 * certificate and key per NAME (its common name), signed by that CA and
 * good for the given hosts (default localhost and 127.0.0.1). No file is
 * ever replaced. Exit 0 on success, 1 when something could not be written,
 * 2 on a usage error.
 */
import { parseArgs } from 'node:util';
import { writeDevCertificates } from '../tls/dev-ca.js';

const USAGE = `usage: actor-raft certs --dir DIR [--host HOST ...] NAME [NAME ...]
  Make a development CA in DIR (kept if there is one) and a certificate per NAME
  for mutual TLS between nodes and clients; --host (repeatable) lists the DNS names
  and IP addresses the certificates are good for (default localhost and 127.0.0.1).`;

function usageError(msg: string): never {
  console.error(`${msg}\n${USAGE}`);
  process.exit(2);
}

async function certs(args: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: { dir: { type: 'string' }, host: { type: 'string', multiple: true }, help: { type: 'boolean' } } });
  } catch (e) {
    usageError((e as Error).message);
  }
  if (parsed.values.help) {
    console.log(USAGE);
    return;
  }
  const dir = parsed.values.dir;
  if (!dir) usageError('--dir is required');
  if (parsed.positionals.length === 0) usageError('name at least one certificate');
  let written: string[];
  try {
    written = await writeDevCertificates(dir, parsed.positionals, parsed.values.host ? { hosts: parsed.values.host } : {});
  } catch (e) {
    if (e instanceof TypeError) usageError(e.message);
    console.error(`actor-raft certs: ${(e as Error).message}`);
    process.exit(1);
  }
  for (const f of written) console.log(`wrote ${f}`);
}

const [command, ...rest] = process.argv.slice(2);
if (command === 'certs') await certs(rest);
else if (command === undefined || command === '--help' || command === 'help') console.log(USAGE);
else usageError(`unknown command ${JSON.stringify(command)}`);
