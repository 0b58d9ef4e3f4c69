import { labEnds } from './lab-ends.js';
import { ControllerClerk } from '../shard/controller-clerk.js';
import { ServiceGroup, type ServiceGroupOptions } from './service-group.js';

const controllerModule = new URL('../shard/controller.js', import.meta.url).href;

/** A controller clerk made by the harness, with the client registration behind it. */
export interface CtrlerClient {
  clerk: ControllerClerk;
  id: number;
}

/**
 * The shard controller lab's harness (part 4A): n controller servers on
 * SQLite, never snapshotting, on the fault-injecting network (the shared
 * harness, ServiceGroup), with clerks. The tests print their own "Test:"
 * and "Passed" lines.
 */
export class CtrlerConfig extends ServiceGroup {
  private readonly clients = new Set<CtrlerClient>();

  private constructor(n: number, unreliable: boolean, opts: ServiceGroupOptions) {
    super(n, unreliable, { module: controllerModule, maxRaftState: -1 }, opts);
  }

  /** make_config: start every server and connect everything. */
  static async make(n: number, unreliable: boolean, opts: ServiceGroupOptions = {}): Promise<CtrlerConfig> {
    const cfg = new CtrlerConfig(n, unreliable, opts);
    await cfg.startAll();
    return cfg;
  }

  /** A clerk with ends to every server, shuffled, and only those to `to` enabled. */
  makeClient(to: number[]): ControllerClerk {
    const { id, link } = this.openLink(to);
    const ck: CtrlerClient = { clerk: new ControllerClerk(labEnds(link)), id };
    this.clients.add(ck);
    return ck.clerk;
  }

  protected override releaseClients(): void {
    for (const ck of [...this.clients]) {
      ck.clerk.close();
      this.closeLink(ck.id);
    }
    this.clients.clear();
  }

  /** cleanup's 120 s rule, for the tests' own Passed lines. */
  end(): void {
    this.checkTimeout();
    if (this.failedWith) throw this.failedWith;
    this.log('  ... Passed');
  }
}
