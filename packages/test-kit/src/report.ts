/**
 * Figures a test measures on the way (answer times, memory held, reasons counted): printed only with
 * `PQC_TEST_VERBOSE=1`, so the default run stays quiet. Assertions never depend on them.
 */
export function report(line: string): void {
  if (process.env.PQC_TEST_VERBOSE === '1') process.stderr.write(`${line}\n`);
}
