#!/usr/bin/env node
// Runs every compiled tap test file (dist/test/**/*.test.js) one after
// another as its own node process, echoes its TAP, and counts the tests (the
// top-level t.test() results of each file) from the parsed stream. Files run
// serially because the lab suites are timing tests on a small machine.
// Usage: node scripts/run-tests.mjs [substring ...]   (filter files by path)
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Parser } from 'tap-parser';

const root = new URL('..', import.meta.url).pathname;
const distTest = join(root, 'dist', 'test');
const FILE_LIMIT_MS = 20 * 60 * 1000;

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

// Unit tests first, then the lab suites in lab order.
const order = (p) => (p.includes('/raft/') ? 1 : p.includes('/kv/') ? 2 : p.includes('/shard/') ? 3 : 0);
const filters = process.argv.slice(2);
const files = find(distTest)
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort((a, b) => order(a) - order(b) || a.localeCompare(b));

function runFile(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [file], {
      cwd: root,
      env: { ...process.env, TAP_TIMEOUT: '0' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let pass = 0;
    let fail = 0;
    const failedNames = [];
    const parser = new Parser();
    parser.on('assert', (res) => {
      if (res.ok) pass++;
      else {
        fail++;
        failedNames.push(res.name);
      }
    });
    let cpu;
    let tail = '';
    child.stdout.on('data', (d) => {
      process.stdout.write(d);
      parser.write(d);
      // A lab file reports its process's total CPU as its last line.
      const text = tail + d.toString();
      for (const m of text.matchAll(/^# process cpu ([\d.]+) s$/gm)) cpu = Number(m[1]);
      tail = text.slice(text.lastIndexOf('\n') + 1);
    });
    const timer = setTimeout(() => {
      console.log(`# ${relative(root, file)}: killed after ${FILE_LIMIT_MS / 60000} minutes`);
      child.kill('SIGKILL');
    }, FILE_LIMIT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      parser.end();
      // A file that died or exited non-zero without a failing test still failed.
      if ((code !== 0 || signal) && fail === 0) {
        fail++;
        failedNames.push(`${relative(root, file)} exited with ${signal ?? code}`);
      }
      resolve({ file, pass, fail, failedNames, ms: Date.now() - started, cpu });
    });
  });
}

let pass = 0;
let fail = 0;
const failures = [];
const t0 = Date.now();
const lab = { files: 0, ms: 0, cpu: 0, cpuKnown: true };
for (const file of files) {
  console.log(`# ---- ${relative(root, file)}`);
  const r = await runFile(file);
  pass += r.pass;
  fail += r.fail;
  failures.push(...r.failedNames.map((n) => `${relative(root, file)}: ${n}`));
  const cpu = r.cpu === undefined ? '' : `, ${r.cpu.toFixed(1)} s CPU`;
  console.log(`# ${relative(root, file)}: ${r.pass} passed, ${r.fail} failed in ${(r.ms / 1000).toFixed(1)} s${cpu}`);
  if (file.includes('/raft/')) {
    lab.files++;
    lab.ms += r.ms;
    if (r.cpu === undefined) lab.cpuKnown = false;
    else lab.cpu += r.cpu;
  }
}
if (lab.files > 0) {
  // The Raft lab's budget (6 minutes real, 60 s CPU) is for these files together.
  const cpu = lab.cpuKnown ? `${lab.cpu.toFixed(1)} s CPU` : 'CPU not reported by every file';
  console.log(`# raft lab: ${lab.files} files in ${(lab.ms / 1000).toFixed(1)} s, ${cpu}`);
}
if (files.length === 0) {
  console.log('# no test files found (did the build run?)');
  fail++;
}
console.log(`# ${files.length} files in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
for (const f of failures) console.log(`# FAILED ${f}`);
console.log(`${pass} passed, ${fail} failed`);
process.exitCode = fail === 0 ? 0 : 1;
