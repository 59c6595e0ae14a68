/**
 * How long the model-based tests run. `npm test`: a fixed number of runs with the fixed seed SEED.
 * `npm run test:model`: TOKENSEC_MODEL_SECONDS (600 there) shared by the four models, with a random
 * seed printed first; TOKENSEC_MODEL_SEED replays one, TOKENSEC_MODEL_RUNS sets the number of runs.
 * A failure prints its seed, path and shrunk steps: each becomes a named test in ./regressions.test.ts.
 */
import type fc from 'fast-check';

export const SEED = 29;
/** The models in `npm run test:model` share its time: two apps, two stores. */
const MODELS = 4;

const budget = Number(process.env.TOKENSEC_MODEL_SECONDS ?? 0);
const seed = process.env.TOKENSEC_MODEL_SEED
  ? Number(process.env.TOKENSEC_MODEL_SEED)
  : budget > 0
    ? Math.floor(Math.random() * 2 ** 31)
    : SEED;

/** How often each step got each answer in this file's runs: printed after them, to show what the runs reached. */
const tallies = new Map<string, number>();

/** A short label of a step's outcome: its status, or statuses. */
function label(outcome: unknown): string {
  if (typeof outcome === 'number' || typeof outcome === 'string' || outcome === undefined || outcome === null) return String(outcome);
  if (Array.isArray(outcome)) return outcome.map(label).join('+');
  if (outcome instanceof Response) return String(outcome.status);
  const { status, token, main } = outcome as { status?: number; token?: string; main?: Response };
  if (main) return String(main.status);
  return token !== undefined && status === undefined ? '200' : String(status);
}

export function tally(step: string, outcome: unknown): void {
  const key = `${step} ${label(outcome)}`;
  tallies.set(key, (tallies.get(key) ?? 0) + 1);
}

export function modelRunSettings(name: string, fixedRuns: number) {
  const runs = process.env.TOKENSEC_MODEL_RUNS ? Number(process.env.TOKENSEC_MODEL_RUNS) : budget > 0 ? undefined : fixedRuns;
  const timeLimit = runs === undefined ? (budget * 1000) / MODELS : undefined;
  let done = 0;
  const parameters: fc.Parameters<unknown> =
    runs === undefined
      ? { seed, numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: timeLimit, markInterruptAsFailure: false }
      : { seed, numRuns: runs };
  return {
    parameters,
    /** The test's own limit: the runs' time, plus room to shrink a failure. */
    timeout: timeLimit === undefined ? 240_000 : timeLimit + 300_000,
    announce: () =>
      console.log(
        `model ${name}: seed ${seed}, ${runs === undefined ? `${timeLimit! / 1000} s` : `${runs} runs`} (TOKENSEC_MODEL_SEED=${seed} replays it)`,
      ),
    ran: () => done++,
    report: () => {
      const seen = [...tallies].sort(([a], [b]) => a.localeCompare(b)).map(([key, count]) => `${key}: ${count}`);
      console.log(`model ${name}: ${done} runs passed, seed ${seed}; steps and their answers:\n  ${seen.join('\n  ')}`);
      tallies.clear();
    },
  };
}
