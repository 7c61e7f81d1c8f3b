/**
 * Type-checks every ```ts block of the README, the package READMEs and docs/ against the workspace's packages (each
 * document's blocks are written into examples/.readme-check/<document>/, where every package of the project
 * resolves). Part of `pnpm typecheck`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ROOT, docBlocks, writeDocBlocks } from './readme-blocks.ts';

const documents = [
  'README.md',
  ...readdirSync(path.join(ROOT, 'packages')).map((p) => `packages/${p}/README.md`),
  ...readdirSync(path.join(ROOT, 'packages')).map((p) => `packages/${p}/EDGE.md`),
  ...readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`),
].filter((document) => existsSync(path.join(ROOT, document)) && docBlocks(document).length > 0);

const base = path.join(ROOT, 'examples', '.readme-check');
const tsc = createRequire(path.join(ROOT, 'package.json')).resolve('typescript/bin/tsc');
let failed = 0;
for (const document of documents) {
  const dir = path.join(base, document.replace(/[/.]/g, '-'));
  const files = writeDocBlocks(document, dir);
  writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({ extends: '../../../tsconfig.base.json', compilerOptions: { noEmit: true, noUnusedLocals: false }, files }, null, 2),
  );
  try {
    execFileSync(process.execPath, [tsc, '-p', path.join(dir, 'tsconfig.json')], { stdio: 'inherit' });
    console.log(`${document}: ${files.length} TypeScript blocks type-check`);
  } catch {
    console.error(`${document}: a TypeScript block does not type-check (files in ${path.relative(ROOT, dir)})`);
    failed++;
  }
}
process.exit(failed === 0 ? 0 : 1);
