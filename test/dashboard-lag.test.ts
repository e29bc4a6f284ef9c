// A follower's lag where people look: a real `ckpt run --follow` child follows a Redis stream
// (20 ms an entry) while entries arrive faster than it applies them. In Chromium the dashboard's
// overview row and the instance view (a lag card instead of the ETA, and the shard's row) show how
// many records it is behind, above 0 while behind and 0 once caught up; the `ckpt status` table
// has a LAG column meanwhile. Skipped with one line without Chromium or Redis.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExitCode } from '../src/errors.ts';
import { chromiumPath, launchChromium } from './helpers/chromium.ts';
import { fixture, runCli, spawnCli, tempDir, waitForOutput } from './helpers/cli.ts';
import { addEntries, redisSkip, withRedis } from './helpers/stream-servers.ts';

const noChromium = existsSync(chromiumPath) ? false : `no Chromium at ${chromiumPath}: apt-get install chromium, or set CKPT_CHROMIUM`;

async function until(check: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(100)) if (await check()) return;
  assert.fail(`timed out waiting until ${what}`);
}

it('the dashboard in Chromium and the ckpt status table show a follower’s lag: records behind its source’s head, then 0', {
  skip: noChromium || (await redisSkip()),
  timeout: 120_000,
}, async () => {
  const name = `ckpt-dashboard-lag-${process.pid}`;
  await withRedis((client) => client.sendCommand(['DEL', name]));
  const path = join(tempDir('ckpt-dashboard-lag-'), 'store.db');
  const db = new DatabaseSync(path);
  db.exec('CREATE TABLE applied (id TEXT PRIMARY KEY)');
  db.close();
  const store = `sqlite:${path}`;
  const follower = spawnCli(['run', fixture('stream-rows.ts'), '--store', store, '--param', 'kind=redis', '--param', `stream=${name}`, '--follow', '--quiet'], {
    env: { CKPT_TEST_SPIN_US: '20000' },
  });
  const dashboard = spawnCli(['dashboard', '--store', store, '--port', '0']);
  const url = (/on (http:\/\/\S+?)\/ /.exec(await waitForOutput(dashboard.child, (out) => / for /.test(out))) as RegExpExecArray)[1] as string;
  const chromium = await launchChromium('ckpt-chromium-lag-');
  try {
    const page = await chromium.context.newPage();
    page.setDefaultTimeout(30_000);
    await page.goto(`${url}/`);
    await page.locator('tr[data-instance][data-state="running"]').waitFor();
    await withRedis((client) => addEntries(client, name, 300));

    // Polled from here: the page's CSP (script-src 'self') refuses Playwright's injected predicates.
    const overviewLag = async () => Number((await page.locator('tr[data-instance] td[data-lag]').first().getAttribute('data-lag')) || -1);
    const cardLag = async () => ((await page.locator('#lag').count()) === 0 ? -1 : Number(await page.locator('#lag').getAttribute('data-lag')));
    await until(async () => (await overviewLag()) > 0 && (await cardLag()) > 0, 'the overview and the instance view show a lag above 0');
    assert.match((await page.locator('#lag').textContent()) ?? '', /lag\d[\d,]* records?, [\d.]+ (ms|s) behind/);
    assert.match((await page.locator('tr[data-shard]').first().textContent()) ?? '', /lag \d[\d,]* records?/);
    assert.match((await page.locator('tr[data-instance]').first().textContent()) ?? '', /\d[\d,]* records?, [\d.]+ (ms|s) behind/);
    const table = await runCli(['status', '--store', store]);
    assert.match(table.stdout, /LAG/);
    assert.match(table.stdout, /\d[\d,]* records?, [\d.]+ s behind/);

    await until(async () => (await overviewLag()) === 0 && (await cardLag()) === 0, 'the lag back at 0 once caught up', 60_000);
    await page.screenshot({ path: join(tempDir('ckpt-dashboard-lag-shot-'), 'lag.png'), fullPage: true });
  } finally {
    await chromium.close();
    dashboard.child.kill('SIGTERM');
    await dashboard.done;
    follower.child.kill('SIGTERM');
    assert.equal((await follower.done).code, ExitCode.interrupted);
    await withRedis((client) => client.sendCommand(['DEL', name]));
  }
});
