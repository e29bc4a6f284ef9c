/**
 * SIGINT/SIGTERM stop a run gracefully: the first signal aborts the returned signal (the runner
 * stops intake, drains records in flight and writes a final checkpoint); a second one calls
 * `onForce` so an operator is never stuck behind a record that does not finish.
 */
export function shutdownOnSignals(options: { onFirst?: (signal: NodeJS.Signals) => void; onForce: (signal: NodeJS.Signals) => void }): {
  signal: AbortSignal;
  dispose(): void;
} {
  const controller = new AbortController();
  const handler = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      options.onForce(signal);
      return;
    }
    options.onFirst?.(signal);
    controller.abort(signal);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
