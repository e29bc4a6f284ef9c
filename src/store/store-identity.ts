// The store-identity rule: a store whose checkpoints are gone while its effect journal or event
// log remains is refused, never taken for a new one. A new store would start every job at
// record 0 and run its effects again, `scope: 'instance'` ones included, though the journal (or
// the audit chain) says they ran. Each backend checks what can go missing cheaply at open.
import { StoreIdentityError } from '../errors.ts';

/**
 * Instances whose event chain (a `chain_heads` row) survives while their `instances` row is gone:
 * emptied or deleted rows, or an older copy restored over a newer store.
 */
export function missingInstancesError(location: string, missing: readonly number[], advice: string): StoreIdentityError {
  return new StoreIdentityError(
    `the store ${location} has lost job instances (id ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}) whose event log remains: ` +
      `their checkpoints are gone, and running them again would start over and repeat their effects; ${advice}`,
  );
}
