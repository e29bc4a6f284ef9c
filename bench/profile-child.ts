// Profiles one variant on its second run in one process (the first warms the JIT), for finding
// where a variant's time goes: writes a .cpuprofile (open it in Chrome's DevTools) and prints the
// functions with the most self time.
//   node bench/profile-child.ts '{"workload":"c1m","variant":"ckpt-auto","records":1000000,"backend":"sqlite","target":"/tmp/x.db"}' /tmp/out.cpuprofile
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { runVariant, type VariantInput } from './variants.ts';

const input = JSON.parse(process.argv[2] ?? '{}') as VariantInput;
const out = process.argv[3] ?? 'variant.cpuprofile';
await runVariant({ ...input, target: `${input.target}.first` });
const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 100 });
await session.post('Profiler.start');
const result = await runVariant(input);
const { profile } = await session.post('Profiler.stop');
writeFileSync(out, JSON.stringify(profile));
const self = new Map<string, number>();
const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
const samples = profile.samples ?? [];
const deltas = profile.timeDeltas ?? [];
for (let i = 0; i < samples.length; i++) {
  const { callFrame } = nodes.get(samples[i] as number)!;
  const key = `${callFrame.functionName || '(anonymous)'} ${callFrame.url.split('/').slice(-2).join('/')}:${callFrame.lineNumber + 1}`;
  self.set(key, (self.get(key) ?? 0) + (deltas[i + 1] ?? 0) / 1000);
}
process.stdout.write(`${JSON.stringify(result)}\n`);
for (const [key, ms] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) process.stdout.write(`${ms.toFixed(1).padStart(8)} ms  ${key}\n`);
process.exit(0);
