/**
 * Type-checks every ```ts block of README.md as a module of its own, against the workspace's packages (the blocks are
 * written into examples/.readme-check/, where every package of the project resolves). Part of `pnpm typecheck`.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const dir = path.join(root, 'examples', '.readme-check');
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/^```ts\n([\s\S]*?)^```/gm)].map((m) => m[1]!);

rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const files = blocks.map((code, i) => {
  const file = `block-${String(i + 1).padStart(2, '0')}.ts`;
  // `export {}` makes each block a module (top-level await, no clashes between blocks).
  writeFileSync(path.join(dir, file), `${code}\nexport {};\n`);
  return file;
});
writeFileSync(
  path.join(dir, 'tsconfig.json'),
  JSON.stringify({ extends: '../../tsconfig.base.json', compilerOptions: { noEmit: true, noUnusedLocals: false }, files }, null, 2),
);
const tsc = createRequire(path.join(root, 'package.json')).resolve('typescript/bin/tsc');
try {
  execFileSync(process.execPath, [tsc, '-p', path.join(dir, 'tsconfig.json')], { stdio: 'inherit' });
  console.log(`README.md: ${files.length} TypeScript blocks type-check`);
} catch {
  console.error(`README.md: a TypeScript block does not type-check (files in ${path.relative(root, dir)})`);
  process.exit(1);
}
