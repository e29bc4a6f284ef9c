// Who a worker is (host:pid, and the node it proves it runs on) and what becomes of the runs of
// workers that are gone.
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import type { EventMap } from '../events.ts';
import type { JsonObject } from '../json.ts';
import type { RunInfo, Store } from '../store/store.ts';

export const defaultWorker = (): string => `${hostname()}:${process.pid}`;

/** How long a worker's lease on a shard lasts unless renewed (a run's, a dead-letter retry's), by default. */
export const DEFAULT_LEASE_MS = 30_000;

/** How often a lease of `leaseMs` is renewed by default: a third of it, 10 ms to 1 s. */
export function defaultHeartbeatMs(leaseMs: number): number {
  return Math.min(1000, Math.max(10, Math.floor(leaseMs / 3)));
}

/**
 * Where a process runs, as only its own machine and PID namespace can say it, stored with each
 * run it claims (`runs.worker_node`). A hostname cannot: host-network pods, `--network host`
 * containers and cloned VMs share one, and `node-a:43` on one machine was judged dead by
 * `node-a` elsewhere, where pid 43 did not exist. On Linux: the kernel's boot id (new at every
 * boot, distinct per machine and per cloned VM), the PID namespace's inode (distinct per
 * container that has its own), the pid, and the process's start time (so a pid reused by
 * another process is told apart). Elsewhere: the hostname and the pid, as before.
 */
export interface WorkerNode {
  /** The machine and PID namespace: only a reaper with the same one may look at the pid. */
  machine: string;
  pid: number;
  /** The process's start time in clock ticks since boot (Linux), or undefined. */
  start: string | undefined;
}

let local: WorkerNode | undefined;

/** This process's node, as stored at claim. */
export function localNode(): string {
  local ??= readLocalNode();
  return formatNode(local);
}

function readLocalNode(): WorkerNode {
  try {
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const pidNamespace = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1];
    if (bootId !== '' && pidNamespace !== undefined) {
      return { machine: `linux/${bootId}/${pidNamespace}`, pid: process.pid, start: procMatches() ? startTime(process.pid) : undefined };
    }
  } catch {
    // Not Linux, or no /proc: the hostname stands in for the machine.
  }
  return { machine: `host/${hostname()}`, pid: process.pid, start: undefined };
}

export const formatNode = (node: WorkerNode): string => `${node.machine}/${node.pid}/${node.start ?? '-'}`;

export function parseNode(text: string): WorkerNode | undefined {
  const match = /^(.*)\/(\d+)\/([^/]+)$/.exec(text);
  if (match === null) return undefined;
  return { machine: match[1] as string, pid: Number(match[2]), start: match[3] === '-' ? undefined : match[3] };
}

/**
 * /proc shows this process's own PID namespace (`unshare --pid` without `--mount-proc` leaves
 * the parent's): only then do /proc/<pid> files describe the process our pids name.
 */
function procMatches(): boolean {
  try {
    return Number(readFileSync('/proc/self/stat', 'utf8').split(' ', 1)[0]) === process.pid;
  } catch {
    return false;
  }
}

function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/**
 * A worker proved to share this machine and PID namespace, whose process is gone: its runs
 * crashed, no need to wait for the lease. Any other worker (another machine, another
 * namespace, a run stored without its node by an older checkpointed) is judged by its lease
 * alone, whatever its `host:pid` label says. `worker` is only that label.
 */
export function isDeadLocalWorker(_worker: string, node: string | null): boolean {
  const theirs = node === null ? undefined : parseNode(node);
  if (theirs === undefined) return false;
  const ours = parseNode(localNode()) as WorkerNode;
  if (theirs.machine !== ours.machine) return false;
  // Our own pid in our own namespace: either this very process, or one that ran before it.
  if (theirs.pid === process.pid) return theirs.start !== ours.start;
  try {
    process.kill(theirs.pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
  // From here /proc is read, which only describes our pids when it shows our namespace.
  if (ours.start === undefined) return false;
  if (isZombie(theirs.pid)) return true;
  // The pid names another process now: the worker's is gone and the pid was reused.
  const now = startTime(theirs.pid);
  return theirs.start !== undefined && now !== undefined && now !== theirs.start;
}

/**
 * A worker proved to be running on this machine and PID namespace: its pid is there, started
 * when the run's did, and not a zombie. A stopped one (SIGSTOP, a paused container) too: it is
 * unresponsive, not crashed, and may go on when continued, so its run is never marked crashed
 * (it ends itself: `lost` if another worker took its expired lease meanwhile, else as it ends).
 */
export function isAliveLocalWorker(_worker: string, node: string | null): boolean {
  const theirs = node === null ? undefined : parseNode(node);
  if (theirs === undefined || theirs.start === undefined) return false;
  const ours = parseNode(localNode()) as WorkerNode;
  if (theirs.machine !== ours.machine || ours.start === undefined) return false;
  if (theirs.pid === process.pid) return theirs.start === ours.start;
  try {
    process.kill(theirs.pid, 0);
  } catch (error) {
    // EPERM: there, but another user's; alive all the same.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !isZombie(theirs.pid) && startTime(theirs.pid) === theirs.start;
}

/** Whether a run's worker is stopped (SIGSTOP, a paused container: state T in /proc); false when it cannot be told. */
export function isStoppedLocalWorker(node: string | null): boolean {
  const theirs = node === null ? undefined : parseNode(node);
  if (theirs === undefined || !isAliveLocalWorker('', node)) return false;
  return /^[Tt]/.test(processState(theirs.pid) ?? '');
}

/**
 * A killed process whose parent has not reaped it yet (a container whose PID 1 does not reap
 * orphans, say) still answers kill(pid, 0), but it will never run again: on Linux its state in
 * /proc is Z. Elsewhere, or when /proc cannot be read, it counts as alive and its lease decides.
 */
function isZombie(pid: number): boolean {
  return processState(pid)?.startsWith('Z') ?? false;
}

/** A process's state letter and what follows it in /proc/<pid>/stat (after its name); undefined where it cannot be read. */
function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2);
  } catch {
    return undefined;
  }
}

/**
 * Mark the runs of dead workers crashed (their process on this machine and PID namespace is gone,
 * or their lease expired), freeing their shards, and log each as a run starting would: so
 * `ckpt status`, `reset` and `dlq --retry` right after a SIGKILL neither show nor refuse for a
 * holder that no longer exists.
 */
export async function reapDeadWorkers(store: Store, instanceId: number): Promise<RunInfo[]> {
  const reaped = await store.reapCrashed(instanceId, isDeadLocalWorker, isAliveLocalWorker);
  for (const run of reaped) {
    const { type, data } = reapedEvent(run);
    await store.appendEvents(instanceId, run.generation, [{ type, at: Date.now(), runId: run.id, shard: run.shard, data: data as unknown as JsonObject }]);
  }
  return reaped;
}

/** A reaped run is logged as crashed, or as ended by an interruption if it said so before exiting. */
export function reapedEvent(run: RunInfo): { type: 'run:crashed'; data: EventMap['run:crashed'] } | { type: 'run:end'; data: EventMap['run:end'] } {
  const processed = Math.max(run.markProcessed, run.markCeiling ?? 0);
  if (run.outcome === 'interrupted') return { type: 'run:end', data: { shard: run.shard, runId: run.id, outcome: 'interrupted', processed, position: null } };
  return { type: 'run:crashed', data: { shard: run.shard, worker: run.worker, runId: run.id, processed, ...(run.markStep ? { atMost: true } : {}) } };
}
