// A job name is at most 255 characters, what every store holds (MySQL's instances.job is
// VARCHAR(255)): a longer one is refused when the job file loads (exit 2, one line) on every
// store, not accepted on SQLite and PostgreSQL and failed on MySQL as "unexpected error: Data too
// long for column 'job'" (exit 1) after the run began.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fixture, isOneLineError, runCli, tempDir } from './helpers/cli.ts';
import { freshMysqlDatabase, mysqlSkip } from './helpers/mysql.ts';

const skip = await mysqlSkip();

test('a job name or limit kind over 255 characters is refused at load on SQLite and MySQL alike; 255 runs on both', { timeout: 60_000, skip }, async () => {
  const mysql = await freshMysqlDatabase('ckpt_jobname');
  after(() => mysql.drop());
  const stores = [`sqlite:${join(tempDir(), 'store.db')}`, mysql.url];
  for (const store of stores) {
    const long = await runCli(['run', fixture('long-name-job.ts'), '--store', store, '--quiet'], { env: { JOB_NAME_LENGTH: '256' } });
    assert.equal(long.code, 2, `${store}: ${long.stderr}`);
    assert.ok(isOneLineError(long.stderr), long.stderr);
    assert.match(long.stderr, /the name "n{40}…" is 256 characters long; a job name has at most 255/);
    const fits = await runCli(['run', fixture('long-name-job.ts'), '--store', store, '--quiet'], { env: { JOB_NAME_LENGTH: '255' } });
    assert.equal(fits.code, 0, `${store}: ${fits.stderr}`);
  }
  for (const store of stores) {
    const long = await runCli(['run', fixture('long-name-job.ts'), '--store', store, '--quiet'], { env: { JOB_NAME_LENGTH: '8', LIMIT_KIND_LENGTH: '256' } });
    assert.equal(long.code, 2, `${store}: ${long.stderr}`);
    assert.ok(isOneLineError(long.stderr), long.stderr);
    assert.match(long.stderr, /the limit kind "k{40}…" is 256 characters long; at most 255/);
    const fits = await runCli(['run', fixture('long-name-job.ts'), '--store', store, '--quiet'], { env: { JOB_NAME_LENGTH: '9', LIMIT_KIND_LENGTH: '255' } });
    assert.equal(fits.code, 0, `${store}: ${fits.stderr}`);
  }
});
