/**
 * Where the workspace and the runtimes from npm are (no test imports, so the benchmark driver uses it too; found from
 * the working directory because this file runs both as CommonJS under jest and as ESM under tsx).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

function workspaceRoot(): string {
  for (let dir = process.cwd(); ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'pnpm-workspace.yaml'))) return dir;
    if (path.dirname(dir) === dir) throw new Error('not inside the pqc-mcp workspace');
  }
}

/** The workspace root. */
export const ROOT = workspaceRoot();

/** A binary of this package's devDependencies (bun, deno), or of the workspace root. */
export function bin(name: string): string {
  for (const dir of [path.join(ROOT, 'packages/edge-tests/node_modules/.bin'), path.join(ROOT, 'node_modules/.bin')]) {
    const file = path.join(dir, name);
    if (existsSync(file)) return file;
  }
  throw new Error(`${name} is not installed: run pnpm install at the workspace root`);
}
