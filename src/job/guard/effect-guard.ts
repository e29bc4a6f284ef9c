import type { PlannedEffect } from '../../store/store.ts';
import type { OnceOptions } from '../define.ts';

/**
 * What decides, before an effect's claim, whether it is performed: a plan run records it
 * instead (`'recorded'`: `ctx.once` returns undefined, `fn` never runs), an apply lets through
 * only what its plan holds (else EffectHeldError). Without a guard every effect is performed.
 */
export interface EffectGuard {
  admit(effect: PlannedEffect): Promise<'perform' | 'recorded'>;
  /**
   * True for a plan run, which performs nothing: `ctx.approval` passes without opening a hold (a
   * plan holds nothing in the store, and lists the effects past the point too; its apply holds there).
   */
  readonly recordsOnly?: boolean;
}

/** An effect that `ckpt apply` held: its plan did not contain it, or listed its key as another kind or target. Its record is set aside, never performed. */
export class EffectHeldError extends Error {
  readonly key: string;
  readonly plan: string;
  /** `changed`: the plan lists the key as another kind or target (what it listed, not what it is now). */
  constructor(key: string, plan: string, changed?: string) {
    super(
      `held: effect ${key} ${changed === undefined ? 'is not in' : 'differs from'} plan ${plan}${changed === undefined ? '' : ` (planned as ${changed})`}; review it, then ckpt dlq <job-file> --retry performs it`,
    );
    this.name = 'EffectHeldError';
    this.key = key;
    this.plan = plan;
  }
}

/** The kind a plan counts an effect as: its `kind`, else the key's prefix before `:`, else `'effect'`. */
export function effectKind(key: string, options: Pick<OnceOptions, 'kind'>): string {
  if (options.kind !== undefined) return options.kind;
  const colon = key.indexOf(':');
  return colon > 0 ? key.slice(0, colon) : 'effect';
}

/** The effect as a plan lists it. */
export function plannedEffect(shard: string, key: string, options: OnceOptions<unknown>): PlannedEffect {
  if (options.describe !== undefined && typeof options.describe !== 'string') throw new TypeError('ctx.once: describe must be a string');
  if (options.target !== undefined && typeof options.target !== 'string') throw new TypeError('ctx.once: target must be a string');
  return {
    shard,
    kind: effectKind(key, options),
    key,
    scope: options.scope === 'instance' ? 'instance' : 'generation',
    describe: options.describe ?? null,
    target: options.target ?? null,
  };
}

/** Where a plan's effect sits in the set an apply checks against: scope and key. */
export function plannedKey(effect: Pick<PlannedEffect, 'scope' | 'key'>): string {
  return `${effect.scope}:${effect.key}`;
}
