import type { PlannedEffect, StoredPlan } from '../../store/store.ts';
import { type EffectGuard, EffectHeldError, plannedKey } from './effect-guard.ts';

/**
 * The guard of `ckpt apply`: an effect is performed only if the plan contains it as it is now
 * (same scope and key, and the same kind and target: a key the plan listed as a `disable` of the
 * directory is not a `delete`, nor a call to another system). Any other (the world changed since
 * the plan: a new account appeared, or one the plan would disable is now to be deleted) is held:
 * an `effect:held` event names it, durably, before its record is set aside; `fn` never runs. The
 * plan's effects are read from the store by every worker, so no crash or resume can widen them.
 */
export class PlanApplyGuard implements EffectGuard {
  readonly #plan: StoredPlan;
  readonly #effects: Map<string, PlannedEffect>;
  readonly #held: (effect: PlannedEffect) => Promise<void>;

  constructor(plan: StoredPlan, held: (effect: PlannedEffect) => Promise<void>) {
    this.#plan = plan;
    this.#effects = new Map(plan.effects.map((effect) => [plannedKey(effect), effect]));
    this.#held = held;
  }

  async admit(effect: PlannedEffect): Promise<'perform'> {
    const planned = this.#effects.get(plannedKey(effect));
    if (planned !== undefined && planned.kind === effect.kind && planned.target === effect.target) return 'perform';
    await this.#held(effect);
    throw new EffectHeldError(effect.key, this.#plan.id, planned === undefined ? undefined : `${what(planned)}, now ${what(effect)}`);
  }
}

/** An effect's kind and target as a held effect's line names them. */
function what(effect: Pick<PlannedEffect, 'kind' | 'target'>): string {
  return `${effect.kind}${effect.target === null ? '' : ` of ${effect.target}`}`;
}
