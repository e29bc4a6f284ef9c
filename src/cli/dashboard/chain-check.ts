import { firstLine } from '../../errors.ts';
import { readChain, verifyChain } from '../../store/audit-chain.ts';
import type { ChainHead, InstanceInfo, Store } from '../../store/store.ts';
import { describeEvent } from '../audit-command.ts';

/** An instance's audit chain as the dashboard last verified it (what `ckpt audit --verify` would say). */
export type ChainStatus =
  | { state: 'checking' }
  | { state: 'intact'; events: number; chained: number; keyed: number; legacy: number; headSeq: number | null; checkedAt: number }
  | { state: 'broken'; eventId: number | null; where: string; problem: string; checkedAt: number }
  | { state: 'unverifiable'; where: string; problem: string; checkedAt: number }
  | { state: 'unchecked'; problem: string; checkedAt: number };

/** A chain whose head moved is checked again, but no more often than this (a busy job moves it all the time). */
const MOVED_RECHECK_MS = 10_000;
/** A chain whose head stands still is checked again this often: an old row edited leaves the head alone. */
const STILL_RECHECK_MS = 60_000;

interface Entry {
  /** The head the status was verified against ('' before the first check ends). */
  head: string;
  status: ChainStatus;
  checkedAt: number;
  running: boolean;
}

const headKey = (head: ChainHead | undefined) => (head === undefined ? 'none' : `${head.seq}:${head.hash}`);

/**
 * Verifies an instance's audit chain for the dashboard, lazily: only for an instance whose detail
 * is asked for, in the background (the page shows `checking` until it is done, never waits), and
 * cached by the chain's head, so an instance at rest is verified once a minute and a busy one at
 * most every 10 s, however many pages poll it. The overview never verifies.
 */
export class ChainChecker {
  readonly #store: Store;
  readonly #key: () => Buffer | undefined;
  readonly #entries = new Map<number, Entry>();

  constructor(store: Store, key: () => Buffer | undefined) {
    this.#store = store;
    this.#key = key;
  }

  /** The status to show now for `instance` whose head was just read as `head`; starts a check when one is due. */
  status(instance: InstanceInfo, head: ChainHead | undefined, now = Date.now()): ChainStatus {
    const entry = this.#entries.get(instance.id);
    if (entry === undefined) {
      this.#start(instance.id, { head: '', status: { state: 'checking' }, checkedAt: 0, running: false });
      return { state: 'checking' };
    }
    if (!entry.running) {
      const age = now - entry.checkedAt;
      if ((entry.head !== headKey(head) && age >= MOVED_RECHECK_MS) || age >= STILL_RECHECK_MS) this.#start(instance.id, entry);
    }
    return entry.status;
  }

  #start(instanceId: number, entry: Entry): void {
    entry.running = true;
    this.#entries.set(instanceId, entry);
    this.#check(instanceId).then(
      ({ head, status }) => {
        Object.assign(entry, { head, status, checkedAt: Date.now(), running: false });
      },
      (error: unknown) => {
        const checkedAt = Date.now();
        Object.assign(entry, {
          status: { state: 'unchecked', problem: `the event log could not be read: ${firstLine(error)}`, checkedAt },
          checkedAt,
          running: false,
        });
      },
    );
  }

  async #check(instanceId: number): Promise<{ head: string; status: ChainStatus }> {
    const { head, events } = await readChain(this.#store, instanceId);
    const checkedAt = Date.now();
    const key = headKey(head);
    let secret: Buffer | undefined;
    try {
      secret = this.#key();
    } catch (error) {
      return {
        head: key,
        status: { state: 'unverifiable', where: 'the whole log', problem: `the secret key could not be loaded: ${firstLine(error)}`, checkedAt },
      };
    }
    const report = verifyChain(events, head, secret);
    if (report.ok) {
      const { events: count, chained, keyed, legacy } = report;
      return { head: key, status: { state: 'intact', events: count, chained, keyed, legacy, headSeq: head?.seq ?? null, checkedAt } };
    }
    const where = report.event === undefined ? 'the log is empty' : describeEvent(report.event);
    if (report.needsKey) return { head: key, status: { state: 'unverifiable', where, problem: report.problem, checkedAt } };
    return { head: key, status: { state: 'broken', eventId: report.event?.id ?? null, where, problem: report.problem, checkedAt } };
  }
}
