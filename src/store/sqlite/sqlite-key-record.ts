// What a SQLite store keeps about its secret key (`<store>.key`, or CKPT_SECRET_KEY): the key's
// fingerprint, in the side file's `side_meta` (an existing key-value table: no migration), since
// a key is made mid-run, when a step first returns a secret, and the side file takes short
// transactions of its own whatever the job's open one holds. Read only to compare; the effects
// and events tables are only read here, to tell a store that had a key before its fingerprint
// was recorded.
import { StoreIdentityError } from '../../errors.ts';
import { registerSecretKeyRecord, type SecretKeyRecord } from '../../secret.ts';
import type { SqliteDriver } from './sqlite-driver.ts';

const FINGERPRINT = 'secret_key_fingerprint';

/** Registers the store's key record for `<store>.key`; the returned function takes it back (on close). */
export function registerSqliteKeyRecord(driver: SqliteDriver): () => void {
  if (driver.path === ':memory:') return () => undefined;
  const record: SecretKeyRecord = {
    fingerprint: () => {
      const row = driver.sideStatement('SELECT value FROM side_meta WHERE store_id = ? AND key = ?').get(driver.storeId, FINGERPRINT);
      return row === undefined ? undefined : String(row.value);
    },
    // Asked at every run start of a store with no key and no record (most stores), so it looks at
    // the newest rows only (by rowid: no scan): once a key existed every event was linked with
    // it, and the newest sealed results are among the newest effects.
    holdsKeyedData: () =>
      driver.sideStatement('SELECT keyed FROM events WHERE store_id = ? ORDER BY id DESC LIMIT 1').get(driver.storeId)?.keyed === 1 ||
      driver
        .sideStatement(
          `SELECT 1 AS found FROM (SELECT result FROM effects WHERE store_id = ? ORDER BY rowid DESC LIMIT 1000) WHERE result LIKE '%"$ckptSealed"%' LIMIT 1`,
        )
        .get(driver.storeId) !== undefined,
    record: (fingerprint) => {
      driver.sideWrite(() => {
        driver.sideStatement('INSERT OR IGNORE INTO side_meta (store_id, key, value) VALUES (?, ?, ?)').run(driver.storeId, FINGERPRINT, fingerprint);
      });
    },
  };
  const file = `${driver.path}.key`;
  // An event linked without the key after keyed ones breaks the chain for good (`ckpt audit`:
  // "rebuilt without the secret key"): any writer (a run, `ckpt status` reaping a crashed one)
  // is refused instead while the key is missing here. Whether the store held keyed data is asked
  // once; whether it recorded a key, at each unkeyed append (one key lookup).
  let heldKeyedData: boolean | undefined;
  driver.noChainKey = () => {
    const recorded = record.fingerprint();
    if (recorded === undefined) {
      heldKeyedData ??= record.holdsKeyedData();
      if (!heldKeyedData) return;
    }
    throw new StoreIdentityError(
      `the store's audit log is keyed with its secret key${recorded === undefined ? '' : ` (fingerprint ${recorded})`}, which is missing here: ` +
        `set CKPT_SECRET_KEY as its runs had it, or restore ${file} from a backup; an event written without the key would break the chain`,
    );
  };
  return registerSecretKeyRecord(file, record);
}
