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
    report: () => console.log(`model ${name}: ${done} runs passed, seed ${seed}`),
  };
}
