// Child process entry: runs one measurement given as JSON and prints its result as one JSON line.
import { runVariant, type VariantInput } from './variants.ts';

const input = JSON.parse(process.argv[2] ?? '{}') as VariantInput;
const result = await runVariant(input);
process.stdout.write(`${JSON.stringify({ ...result, maxRssMb: process.resourceUsage().maxRSS / 1024 })}\n`);
process.exit(0);
