import type { PlannedEffect, StoredPlan } from '../../store/store.ts';
import { type EffectGuard, EffectHeldError, plannedKey } from './effect-guard.ts';

/**
 * The guard of `ckpt apply`: an effect is performed only if the plan contains it (same scope
 * and key). Any other (the world changed since the plan: a new account appeared) is held: an
 * `effect:held` event names it, durably, before its record is set aside; `fn` never runs. The
 * plan's keys are read from the store by every worker, so no crash or resume can widen them.
 */
export class PlanApplyGuard implements EffectGuard {
  readonly #plan: StoredPlan;
  readonly #keys: Set<string>;
  readonly #held: (effect: PlannedEffect) => Promise<void>;

  constructor(plan: StoredPlan, held: (effect: PlannedEffect) => Promise<void>) {
    this.#plan = plan;
    this.#keys = new Set(plan.effects.map(plannedKey));
    this.#held = held;
  }

  async admit(effect: PlannedEffect): Promise<'perform'> {
    if (this.#keys.has(plannedKey(effect))) return 'perform';
    await this.#held(effect);
    throw new EffectHeldError(effect.key, this.#plan.id);
  }
}
