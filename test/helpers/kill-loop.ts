// The crash loop the per-source tests share: run `ckpt run …` as a child, SIGKILL it at random
// moments (mostly after it began writing records, sometimes during start-up) until enough kills
// landed mid-run, then let a last run complete. Afterwards, read back from the side file which
// process did which record and bound the rework of every kill by the checkpoint interval.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnCli } from './cli.ts';

export interface KillLoopResult {
  kills: number;
  /** Kills that landed after the process had written at least one record. */
  midRunKills: number;
  final: { code: number | null; stderr: string; stdout: string };
}

export async function killUntilComplete(args: string[], env: NodeJS.ProcessEnv, sideFile: string, midRunKills = 10): Promise<KillLoopResult> {
  let kills = 0;
  let landed = 0;
  for (let attempt = 0; attempt < 200; attempt++) {
    const { child, done } = spawnCli(args, { env });
    if (landed >= midRunKills) {
      const final = await done;
      return { kills, midRunKills: landed, final };
    }
    // One kill in four from process start (start-up, claim, resume, the source's first page);
    // the rest a random 0–250 ms after this process wrote its first record.
    const fromStart = attempt % 4 === 3;
    const before = sizeOf(sideFile);
    const ended = { now: false };
    void done.then(() => {
      ended.now = true;
    });
    const moment = (fromStart ? sleep(Math.random() * 400) : grows(sideFile, before, ended)).then(() => sleep(Math.random() * 250));
    const outcome = await Promise.race([done, moment]);
    if (outcome !== undefined) {
      assert.fail(`the run ended by itself after ${kills} kills (${landed} mid-run); slow the job down: exit ${outcome.code} ${outcome.stderr}`);
    }
    child.kill('SIGKILL');
    const result = await done;
    assert.equal(result.signal, 'SIGKILL', `the child ended before its kill: exit ${result.code} ${result.stderr}`);
    kills++;
    if (sizeOf(sideFile) > before) landed++;
  }
  throw new Error('too many attempts');
}

/**
 * Every expected record done at least once, and each process that followed a killed one started
 * no further back than `every` records before where the killed one stopped (records are processed
 * in `seq` order, one at a time). Returns how many kills cost rework.
 */
export function assertReworkBounded(sideFile: string, expected: readonly number[], every: number): { reworked: number; worst: number } {
  const byProcess = new Map<number, number[]>();
  const done = new Set<number>();
  for (const line of readFileSync(sideFile, 'utf8').split('\n')) {
    if (line === '') continue;
    const [pid, seq] = line.split(' ').map(Number) as [number, number];
    done.add(seq);
    const list = byProcess.get(pid) ?? [];
    list.push(seq);
    byProcess.set(pid, list);
  }
  const missing = expected.filter((seq) => !done.has(seq));
  assert.deepEqual(missing.slice(0, 5), [], `${missing.length} records never processed`);
  const rank = new Map(expected.map((seq, index) => [seq, index]));
  const writers = [...byProcess.values()];
  let reworked = 0;
  let worst = 0;
  for (let i = 1; i < writers.length; i++) {
    const lastDone = rank.get(writers[i - 1]?.at(-1) as number) as number;
    const nextFirst = rank.get(writers[i]?.[0] as number) as number;
    const rework = lastDone - (nextFirst - 1);
    assert.ok(rework >= 0, `after a kill at record #${lastDone} the next process started at #${nextFirst}: records skipped`);
    assert.ok(rework <= every, `after a kill at record #${lastDone} the next process started at #${nextFirst}: ${rework} records redone (> ${every})`);
    if (rework > 0) reworked++;
    worst = Math.max(worst, rework);
  }
  return { reworked, worst };
}

/** Resolves once the file grew past `from`, or the child ended (so a failed test does not linger). */
async function grows(path: string, from: number, ended: { now: boolean }): Promise<void> {
  for (let waited = 0; waited < 30_000 && !ended.now && sizeOf(path) <= from; waited += 5) await sleep(5);
}

function sizeOf(path: string): number {
  return existsSync(path) ? statSync(path).size : 0;
}
