// Re-renders results.md and results.png from results.json (after a change to the report's
// wording or the chart), without measuring again.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { drawChart } from './chart.ts';
import { type BenchResults, renderResults } from './report.ts';

const here = import.meta.dirname;
const results = JSON.parse(readFileSync(join(here, 'results.json'), 'utf8')) as BenchResults;
writeFileSync(join(here, 'results.md'), renderResults(results, readFileSync(join(here, 'results.md'), 'utf8')));
writeFileSync(join(here, 'results.png'), drawChart(results));
