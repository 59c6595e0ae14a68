/**
 * Process warnings for setup mistakes that only show at request time: each code once per
 * process, so a mistake on every request is one line in the log, not one per request.
 */
const warned = new Set<string>();

/** process.emitWarning(message, { code }), the first time this code is raised in the process. */
export function warnOnce(code: string, message: string): void {
  if (warned.has(code)) return;
  warned.add(code);
  process.emitWarning(message, { code });
}
