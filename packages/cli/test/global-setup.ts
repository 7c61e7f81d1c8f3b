/**
 * Builds the real binary once before the CLI tests: `@pqc-mcp/core` (the binary imports its dist) and then this
 * package, exactly as `pnpm --filter pqc-mcp build` does (tsc, then the executable bit on dist/index.js).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

export default function globalSetup(): void {
  const root = join(__dirname, '..', '..', '..');
  const tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
  for (const pkg of ['core', 'cli']) {
    execFileSync(process.execPath, [tsc, '-p', join(root, 'packages', pkg, 'tsconfig.build.json')], { stdio: 'inherit' });
  }
  chmodSync(join(root, 'packages', 'cli', 'dist', 'index.js'), 0o755);
}
