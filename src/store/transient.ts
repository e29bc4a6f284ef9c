import { StoreUnavailableError } from '../errors.ts';

/**
 * Errors that say "the store is not reachable right now", not "the request is wrong": a refused
 * or reset connection, a PostgreSQL shutting down or restarting, SQLite busy past its timeout,
 * a serialization failure or deadlock (the transaction was rolled back whole). Retrying the same
 * call later can succeed; retrying anything else cannot.
 */
const transientCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  '08000', // connection_exception
  '08001', // sqlclient_unable_to_establish_sqlconnection
  '08003', // connection_does_not_exist
  '08004', // sqlserver_rejected_establishment_of_sqlconnection
  '08006', // connection_failure
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down)
  '53300', // too_many_connections
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
]);

const transientMessages =
  /Connection terminated|connection error|not queryable|terminating connection|server closed the connection|database is locked|database system is (starting up|shutting down)|timeout expired/i;

export function isTransientStoreError(error: unknown): boolean {
  if (error instanceof StoreUnavailableError) return true;
  if (error === null || typeof error !== 'object') return false;
  const { code, errcode, message, errors } = error as { code?: unknown; errcode?: unknown; message?: unknown; errors?: unknown };
  if (typeof code === 'string' && transientCodes.has(code)) return true;
  if (typeof errcode === 'number' && (errcode & 0xff) === 5) return true; // SQLITE_BUSY and its extended codes
  if (typeof message === 'string' && transientMessages.test(message)) return true;
  // Node's happy-eyeballs connect (localhost → ::1 and 127.0.0.1) fails with an AggregateError.
  return Array.isArray(errors) && errors.some(isTransientStoreError);
}

/**
 * A store call's error as the runner sees it: "unreachable" errors become StoreUnavailableError,
 * so they are told apart from a job's own errors (a job's ECONNRESET to its API is the job's).
 */
export function asStoreError(error: unknown, location: string): unknown {
  if (error instanceof StoreUnavailableError || !isTransientStoreError(error)) return error;
  return new StoreUnavailableError(`the store ${location} is unreachable: ${describeDriverError(error)}`, { cause: error });
}

/** A driver error in one line: its message, else its code, else its first inner error's. */
export function describeDriverError(error: unknown): string {
  if (error === null || typeof error !== 'object') return String(error);
  const { code, message, errors } = error as { code?: unknown; message?: unknown; errors?: unknown };
  const text = typeof message === 'string' && message !== '' ? message.split('\n', 1)[0] : undefined;
  if (text !== undefined) return typeof code === 'string' && !text.includes(code) ? `${text} (${code})` : text;
  if (Array.isArray(errors) && errors.length > 0) return describeDriverError(errors[0]);
  return typeof code === 'string' ? code : String(error);
}
