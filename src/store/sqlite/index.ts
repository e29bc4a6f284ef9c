/**
 * The SQLite backend's face: what the rest of checkpointed and `checkpointed/sqlite` take from
 * this folder. SQLite shares the dialect object and the row mappings with the servers, not their
 * flows: node:sqlite is synchronous, times are this machine's clock, and the effect journal and
 * event log live in a side file (see docs/DESIGN.md, "One SQL core").
 */
export { SqliteStore, type SqliteStoreOptions } from './sqlite-store.ts';
