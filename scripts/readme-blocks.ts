/**
 * The TypeScript blocks of the project's Markdown documents, as files: a block whose first line is a comment naming
 * a file (`// server-express.ts`) is written under that name (the others import it so, as `./tools.js`); the rest
 * as `block-NN.ts`. Each document's blocks go into a folder of their own under `examples/`, where every package of
 * the workspace resolves. Shared by the type check (`scripts/check-readme.ts`) and the test that runs the README's
 * quick starts.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** The repository root. */
export const ROOT = path.resolve(import.meta.dirname, '..');

/** One block of a document. */
export interface DocBlock {
  /** The file name it is written as. */
  readonly file: string;
  readonly code: string;
}

/** The TypeScript blocks of one Markdown file (a path from the repository root). */
export function docBlocks(document: string): DocBlock[] {
  const text = readFileSync(path.join(ROOT, document), 'utf8');
  return [...text.matchAll(/^```ts\n([\s\S]*?)^```/gm)].map((m, i) => {
    const code = m[1]!;
    const named = /^\/\/ ([\w.-]+\.ts)\b/.exec(code);
    return { file: named ? named[1]! : `block-${String(i + 1).padStart(2, '0')}.ts`, code };
  });
}

/**
 * Writes the blocks of `document` into `dir` (emptied first), each a module of its own (`export {}`: top-level await,
 * no clashes between blocks). Returns the file names.
 */
export function writeDocBlocks(document: string, dir: string): string[] {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return docBlocks(document).map(({ file, code }) => {
    writeFileSync(path.join(dir, file), `${code}\nexport {};\n`);
    return file;
  });
}
