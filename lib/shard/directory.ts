import { MessageChannel, type MessagePort } from 'node:worker_threads';
import type { ClientLink, GroupHandle } from '../api/client.js';

interface LinkRequest {
  id: number;
  name: string;
}
interface LinkReply {
  id: number;
  link: ClientLink;
}

/**
 * Where the groups of a sharded deployment find each other (the lab's
 * make_end, for a process): the main thread registers each Raft group
 * under a name, and any thread holding one of its ports asks for a link
 * to a group by name, answered with a fresh handle of that group (its
 * control port transferred). A request for a name not registered yet
 * waits until it is, so groups may start in any order and their peers may
 * ask before the group they want exists.
 */
export class GroupDirectory {
  private readonly groups = new Map<string, { handle(): GroupHandle }>();
  private readonly waiting = new Map<string, (() => void)[]>();
  private readonly ports = new Set<MessagePort>();
  private closed = false;

  register(name: string, group: { handle(): GroupHandle }): void {
    if (this.groups.has(name)) throw new Error(`a group named ${JSON.stringify(name)} is registered already`);
    this.groups.set(name, group);
    for (const wake of this.waiting.get(name) ?? []) wake();
    this.waiting.delete(name);
  }

  /** A port for one thread (post it, transferring it). */
  port(): MessagePort {
    const { port1, port2 } = new MessageChannel();
    this.ports.add(port1);
    port1.on('message', (req: LinkRequest) => void this.answer(port1, req));
    port1.unref();
    return port2;
  }

  private async answer(port: MessagePort, req: LinkRequest): Promise<void> {
    if (!this.groups.has(req.name)) {
      await new Promise<void>((wake) => {
        const list = this.waiting.get(req.name) ?? [];
        list.push(wake);
        this.waiting.set(req.name, list);
      });
    }
    if (this.closed) return;
    let link: ClientLink;
    try {
      link = this.groups.get(req.name)!.handle();
    } catch {
      return; // the group is closed: the asker waits until its own peer stops
    }
    const reply: LinkReply = { id: req.id, link };
    port.postMessage(reply, [link.control]);
  }

  close(): void {
    this.closed = true;
    for (const p of this.ports) p.close();
    this.ports.clear();
    this.waiting.clear();
  }
}

/** A thread's side of a GroupDirectory port. */
export class DirectoryClient {
  private next = 1;
  private readonly pending = new Map<number, (link: ClientLink) => void>();

  constructor(private readonly port: MessagePort) {
    port.on('message', (r: LinkReply) => {
      const resolve = this.pending.get(r.id);
      this.pending.delete(r.id);
      resolve?.(r.link);
    });
    port.unref();
  }

  /** A fresh link to the group registered as `name` (waits until it is). */
  link(name: string): Promise<ClientLink> {
    const id = this.next++;
    return new Promise<ClientLink>((resolve) => {
      this.pending.set(id, resolve);
      const req: LinkRequest = { id, name };
      this.port.postMessage(req);
    });
  }

  close(): void {
    this.port.close();
    this.pending.clear();
  }
}
