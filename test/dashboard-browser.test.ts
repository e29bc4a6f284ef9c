import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromiumPath, launchChromium } from './helpers/chromium.ts';
import { fixture, repoRoot, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';

// Debian's chromium (or CKPT_CHROMIUM), driven by playwright-core; no browser is downloaded.
const noChromium = existsSync(chromiumPath) ? false : `no Chromium at ${chromiumPath}: apt-get install chromium, or set CKPT_CHROMIUM`;
// The README's picture is refreshed on demand only, so a test run leaves the work tree clean.
const screenshot = process.env.CKPT_UPDATE_SCREENSHOT === '1' ? join(repoRoot, 'docs', 'dashboard.png') : undefined;

/** Resolves once `check` holds (polled every 100 ms), or fails after 30 s saying what was awaited. */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(100)) if (await check()) return;
  assert.fail(`timed out waiting until ${what}`);
}

const dir = tempDir('ckpt-dashboard-browser-');
after(() => rmSync(dir, { recursive: true, force: true }));

const store = `sqlite:${join(dir, 'ckpt.db')}`;
const env = { CKPT_TEST_SHARDS: '3', CKPT_TEST_RECORDS: '400', CKPT_TEST_DELAY_MS: '8', CKPT_TEST_BAD_EVERY: '97' };
// A progress mark every 40 ms, so the killed run leaves rework for the resume to show.
const jobArgs = [
  'run',
  fixture('dashboard-job.ts'),
  '--store',
  store,
  '--json',
  '--heartbeat-ms',
  '40',
  '--param',
  'region=eu-west',
  '--param',
  'apiToken=hunter2-in-clear',
];

it('the dashboard in Chromium: progress advances, a SIGKILLed worker is shown dead then crashed, the job completes', {
  skip: noChromium,
  timeout: 120_000,
}, async (t) => {
  const first = spawnCli(jobArgs, { env });
  await waitForOutput(first.child, (out) => out.includes('"type":"checkpoint"'));
  const dashboard = spawnCli(['dashboard', '--store', store, '--port', '0']);
  const url = (/on (http:\/\/\S+?)\/ /.exec(await waitForOutput(dashboard.child, (out) => / for /.test(out))) as RegExpExecArray)[1] as string;

  const chromium = await launchChromium('ckpt-chromium-');
  const browser = chromium.context;
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(30_000);
    await page.goto(`${url}/`);

    // Progress advances without a reload.
    const running = page.locator('tr[data-shard][data-status="running"]').first();
    await running.waitFor();
    const shard = (await running.getAttribute('data-shard')) as string;
    const before = Number(await running.getAttribute('data-done'));
    // Polled from here: the page's CSP (script-src 'self') refuses Playwright's injected predicates.
    await until(async () => Number(await page.locator(`tr[data-shard="${shard}"]`).getAttribute('data-done')) > before, 'progress advances');
    const text = await page.textContent('body');
    assert.ok(text?.includes('[redacted]') && !text.includes('hunter2'), 'secrets show as [redacted]');
    assert.equal(await page.locator('tr[data-instance][data-state="running"]').count(), 1);

    // SIGKILL: the store still says running; the page says the worker is dead, and why.
    first.child.kill('SIGKILL');
    assert.equal((await first.done).signal, 'SIGKILL');
    await page.locator('tr[data-run][data-dead="1"]').first().waitFor();
    await page.locator('tr[data-instance][data-state="stalled"]').waitFor();
    assert.match((await page.locator('tr[data-run][data-dead="1"]').first().textContent()) ?? '', /process is gone/);

    // A second worker reaps the dead run (now recorded crashed), resumes and completes the job.
    const second = spawnCli(jobArgs, { env });
    await page.locator('tr[data-run][data-outcome="crashed"]').first().waitFor();
    await page.locator('tr[data-shard][data-status="running"]').first().waitFor();
    await page.locator('tr[data-run][data-outcome="completed"]').first().waitFor();
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    await page.locator('tr[data-instance][data-state="completed"]').waitFor({ timeout: 60_000 });
    assert.equal((await second.done).code, 0);
    await until(async () => (await page.locator('tr[data-shard][data-status="completed"]').count()) === 3, 'all 3 shards show completed');
    assert.equal(await page.locator('tr[data-run][data-dead="1"]').count(), 0, 'no run is left looking alive or dead-but-unreaped');
    assert.ok((await page.locator('#dead-letters tr').count()) > 1, 'dead letters are listed');
    if (!screenshot) await page.screenshot({ path: join(dir, 'dashboard.png'), fullPage: true });
    t.diagnostic(screenshot ? `screenshot saved to ${screenshot}` : 'set CKPT_UPDATE_SCREENSHOT=1 to refresh docs/dashboard.png');

    // The audit chain of the instance shown: intact, with its event count.
    await page.locator('#chain[data-chain="intact"]').waitFor();
    assert.match((await page.locator('#chain').textContent()) ?? '', /intact\d[\d,]* events/);
  } finally {
    await chromium.close();
    dashboard.child.kill('SIGTERM');
    await dashboard.done;
  }
});

it('the dashboard in Chromium: an event row edited by plain SQL shows the audit chain broken, naming the event', {
  skip: noChromium,
  timeout: 60_000,
}, async () => {
  // The store the first test completed; one of its event rows (in the SQLite side file) edited.
  const side = new DatabaseSync(`${join(dir, 'ckpt.db')}.effects`);
  let edited: number;
  try {
    edited = Number((side.prepare('SELECT id FROM events ORDER BY id LIMIT 1 OFFSET 5').get() as { id: number }).id);
    side.prepare('UPDATE events SET at = at + 1 WHERE id = ?').run(edited);
  } finally {
    side.close();
  }
  const dashboard = spawnCli(['dashboard', '--store', store, '--port', '0']);
  const url = (/on (http:\/\/\S+?)\/ /.exec(await waitForOutput(dashboard.child, (out) => / for /.test(out))) as RegExpExecArray)[1] as string;
  const chromium = await launchChromium('ckpt-chromium-');
  try {
    const page = await chromium.context.newPage();
    page.setDefaultTimeout(30_000);
    await page.goto(`${url}/`);
    await page.locator('#chain[data-chain="broken"]').waitFor();
    const text = (await page.locator('#chain').textContent()) ?? '';
    assert.match(text, new RegExp(`event ${edited} \\(.*\\): its content does not match its hash`));
  } finally {
    await chromium.close();
    dashboard.child.kill('SIGTERM');
    await dashboard.done;
  }
});
