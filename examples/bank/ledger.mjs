// A replicated bank ledger: the state machine every peer of the group runs.
// Accounts hold whole cents; a transfer that would overdraw is refused, on
// every replica alike, so no balance ever goes below zero. Each command
// carries its client's id and a sequence number, so a command retried after
// an "outcome unknown" error is applied once (the retry gets the first
// answer back).

/** Commands:
 *   { op: 'open', account, client, seq }
 *   { op: 'deposit', account, amount, client, seq }
 *   { op: 'transfer', from, to, amount, client, seq }
 * Queries: { balance: account }, { total: true }, { accounts: true }
 */
export function createStateMachine() {
  /** account -> balance in cents */
  let balances = new Map();
  /** client -> { seq, result } of its latest command (exactly once) */
  let sessions = new Map();

  function check(cmd) {
    if (typeof cmd !== 'object' || cmd === null) throw new Error('a command is an object');
    if (typeof cmd.client !== 'string' || !Number.isSafeInteger(cmd.seq) || cmd.seq < 1) {
      throw new Error('a command names its client (a string) and a sequence number (1, 2, ...)');
    }
    const amount = cmd.amount;
    if ((cmd.op === 'deposit' || cmd.op === 'transfer') && (!Number.isSafeInteger(amount) || amount <= 0)) {
      throw new Error(`the amount must be a positive whole number of cents, got ${JSON.stringify(amount)}`);
    }
  }

  function account(name) {
    if (!balances.has(name)) throw new Error(`no account ${JSON.stringify(name)}`);
    return balances.get(name);
  }

  function execute(cmd) {
    switch (cmd.op) {
      case 'open':
        if (typeof cmd.account !== 'string' || cmd.account === '') throw new Error('an account needs a name');
        if (balances.has(cmd.account)) throw new Error(`account ${JSON.stringify(cmd.account)} exists`);
        balances.set(cmd.account, 0);
        return { balance: 0 };
      case 'deposit': {
        const balance = account(cmd.account) + cmd.amount;
        balances.set(cmd.account, balance);
        return { balance };
      }
      case 'transfer': {
        // Check everything first, then change: a refused command changes nothing.
        const from = account(cmd.from);
        const to = account(cmd.to);
        if (cmd.from === cmd.to) throw new Error('a transfer needs two accounts');
        if (from < cmd.amount) throw new Error(`insufficient funds: ${cmd.from} has ${from}, the transfer needs ${cmd.amount}`);
        balances.set(cmd.from, from - cmd.amount);
        balances.set(cmd.to, to + cmd.amount);
        return { from: from - cmd.amount, to: to + cmd.amount };
      }
      default:
        throw new Error(`unknown op ${JSON.stringify(cmd.op)}`);
    }
  }

  return {
    apply(cmd) {
      check(cmd);
      const last = sessions.get(cmd.client);
      if (last && cmd.seq <= last.seq) {
        if (cmd.seq === last.seq) return last.result;
        throw new Error(`sequence number ${cmd.seq} of ${cmd.client} is older than its latest, ${last.seq}`);
      }
      let result;
      try {
        result = { ok: execute(cmd) };
      } catch (e) {
        result = { refused: e.message };
      }
      sessions.set(cmd.client, { seq: cmd.seq, result });
      return result;
    },
    query(q) {
      if (q && typeof q.balance === 'string') return balances.get(q.balance) ?? null;
      if (q && q.total) {
        let total = 0;
        for (const b of balances.values()) total += b;
        return total;
      }
      if (q && q.accounts) return Object.fromEntries(balances);
      throw new Error('queries: { balance: name }, { total: true } or { accounts: true }');
    },
    snapshot() {
      return new TextEncoder().encode(JSON.stringify({ balances: [...balances], sessions: [...sessions] }));
    },
    restore(bytes) {
      const s = JSON.parse(new TextDecoder().decode(bytes));
      balances = new Map(s.balances);
      sessions = new Map(s.sessions);
    },
  };
}
