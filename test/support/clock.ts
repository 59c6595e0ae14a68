/**
 * The test's clock, frozen the way jose's tests freeze it: vitest fakes `Date` only (timers,
 * microtasks and I/O stay real), so the code under test reads the time as it does in production.
 * Files that use it restore the real clock after each test: `afterEach(() => vi.useRealTimers())`.
 */
import { vi } from 'vitest';

export interface FakeClock {
  /** Sets the time, in milliseconds since the epoch. */
  set(ms: number): void;
  /** Moves the time forward by `ms` milliseconds. */
  advance(ms: number): void;
}

export function fakeClock(start: number): FakeClock {
  if (!vi.isFakeTimers()) vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(start);
  return {
    set: (ms) => vi.setSystemTime(ms),
    advance: (ms) => vi.setSystemTime(Date.now() + ms),
  };
}
