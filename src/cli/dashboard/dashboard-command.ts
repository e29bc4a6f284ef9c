import { checkServeToken } from '../../metrics/http-access.ts';
import { chainKeyFinder } from '../../secret.ts';
import { type CliIo, openCliStore, secretKeyFileFor } from '../shared.ts';
import { startDashboard } from './server.ts';

export interface DashboardCommandOptions {
  store?: string;
  port: number;
  host: string;
  token?: string;
}

/** `ckpt dashboard`: serve the page until SIGINT or SIGTERM, then exit 0. */
export async function dashboardCommand(options: DashboardCommandOptions, io: CliIo): Promise<number> {
  const token = options.token ?? (io.env.CKPT_DASHBOARD_TOKEN || undefined);
  // Checked before anything is opened: the page shows every job's params, workers and errors.
  checkServeToken(options.host, token, { server: 'the dashboard', hostFlag: '--host', tokenFlag: '--token', tokenEnv: 'CKPT_DASHBOARD_TOKEN' });
  const store = await openCliStore(options.store, { existing: true });
  try {
    const chainKey = chainKeyFinder(io.env, secretKeyFileFor(options.store));
    const server = await startDashboard({ store, port: options.port, host: options.host, token, chainKey });
    io.stdout.write(
      `ckpt dashboard on ${server.url}/ for ${store.location} (read-only; metrics at /metrics)${token === undefined ? '' : '; requests need the token: open /?token=… once, or send Authorization: Bearer …'}; Ctrl-C to stop\n`,
    );
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    await server.close();
    return 0;
  } finally {
    await store.close();
  }
}
