/**
 * 'checkpointed/store': the store contract, for backend authors. A backend implements `Store`,
 * the intersection of one interface per concern (lifecycle, instances, leases, checkpoints, the
 * effect journal, dead letters, history, plans and rate buckets), over the values in its signatures (Lease, Checkpoint,
 * RunInfo, …); `test/store-contract.test.ts` is the suite every backend passes. A job author
 * needs none of it, and a program embedding runJob only `Store`, to name what openStore returns.
 * These names move with the backends' needs: they are not part of the root's promise.
 *
 * @module checkpointed/store
 */
export type * from './store/store.ts';
