import type { RunEvent } from '../events.ts';
import { checkServeToken, METRICS_ACCESS } from './http-access.ts';
import { serveMetrics } from './metrics-server.ts';
import { RunMetrics } from './run-metrics.ts';

/**
 * `ckpt run --metrics-port N`: serve this worker's metrics for as long as it runs. The address is
 * printed on stderr (stdout carries the run's JSON lines), so `--metrics-port 0` can be found.
 */
export async function startWorkerMetrics(
  options: { metricsPort?: number; metricsHost?: string; metricsToken?: string; quiet?: boolean },
  stderr: { write(text: string): unknown },
): Promise<{ onEvent: (event: RunEvent) => void; close(): Promise<void> }> {
  const host = options.metricsHost ?? '127.0.0.1';
  checkServeToken(host, options.metricsToken, METRICS_ACCESS);
  const metrics = new RunMetrics();
  const server = await serveMetrics(metrics.registry, options.metricsPort ?? 0, host, options.metricsToken);
  if (!options.quiet || options.metricsPort === 0) stderr.write(`metrics on ${server.url}/metrics\n`);
  return { onEvent: metrics.onEvent, close: () => server.close() };
}
