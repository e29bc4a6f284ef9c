import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commandsFor } from './commands.ts';
import { redactJson } from './redact.ts';

test('the copy-paste commands hide every param value the page shows as [redacted]', () => {
  const params = {
    region: 'eu',
    password: 'hunter2',
    target: 'postgres://svc:pw-SECRET@db.internal/x',
    feed: 'https://api.example.com/v1?api_key=KEY-77&page=2',
    limits: { apiKey: 'NESTED-KEY', size: 5 },
    note: '[redacted]',
  };
  const instance = { id: 1, job: 'sync', paramsHash: 'h', params, generation: 1, status: 'open' as const, version: null, createdAt: 0, completedAt: null };
  const shown = JSON.stringify(redactJson(params));
  const commands = Object.values(commandsFor(instance, 'postgres://ckpt:***@store.internal/ckpt')).join('\n');
  for (const needle of ['hunter2', 'pw-SECRET', 'KEY-77', 'NESTED-KEY']) {
    assert.ok(!shown.includes(needle), `the page hides ${needle}`);
    assert.ok(!commands.includes(needle), `the commands hide ${needle}:\n${commands}`);
  }
  assert.match(commands, /--param region=eu --param 'password=<password>' --param 'target=<target>' --param 'feed=<feed>' --param 'limits=<limits>'/);
});
