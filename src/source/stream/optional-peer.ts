import { UsageError } from '../../errors.ts';

/**
 * Imports an optional peer dependency on first use, through a specifier the bundlers and the
 * type checker cannot see: `import 'checkpointed'` never loads a stream client.
 */
export async function importPeer<T>(specifier: string, hint: string): Promise<T> {
  try {
    return (await import(specifier)) as T;
  } catch (error) {
    throw new UsageError(hint, { cause: error });
  }
}

/** A server URL as it may be printed: scheme, host and port, never a user or a password. */
export function describeServer(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}`;
  } catch {
    return 'an unparsable URL';
  }
}
