#!/usr/bin/env node
// The `ckpt` command. Job files are TypeScript; Node 24 strips their types, so keep its notice quiet.
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (warning.name === 'ExperimentalWarning') return;
  process.stderr.write(`${warning.name}: ${warning.message}\n`);
});
const { main } = await import('../dist/cli/main.js');
process.exitCode = await main(process.argv.slice(2));
