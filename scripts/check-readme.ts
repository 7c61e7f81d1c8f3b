/**
 * Type-checks every ```ts block of the README, the package READMEs and docs/ against the workspace's packages (each
 * document's blocks are written into examples/.readme-check/<document>/, where every package of the project
 * resolves), then checks that every relative link of every Markdown file of the repository resolves: to a file or
 * folder that exists, and, for a `#fragment` into a Markdown file, to one of its headings. Part of `pnpm typecheck`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
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

/** Every Markdown file of the repository (not in node_modules, dot folders or generated folders). */
function markdownFiles(dir = ROOT): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.') || entry.name === 'node_modules' || entry.name === 'dist') continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...markdownFiles(full));
    else if (entry.name.endsWith('.md')) found.push(full);
  }
  return found;
}

/** The text of a Markdown file outside fenced code blocks and inline code, where links are links. */
function proseOf(text: string): string {
  return text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** The anchors GitHub gives the headings of a Markdown file (lowercase, punctuation dropped, spaces as `-`, repeats numbered). */
function anchorsOf(file: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const text = readFileSync(file, 'utf8').replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
  for (const [, heading] of text.matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const base = heading!
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/ /g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

/** The broken relative links of one Markdown file, as `file: target (why)`. */
function brokenLinks(file: string): string[] {
  const broken: string[] = [];
  const relative = path.relative(ROOT, file);
  for (const [, target] of proseOf(readFileSync(file, 'utf8')).matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target!)) continue; // https:, mailto:
    const [rawPath = '', fragment] = target!.split('#', 2);
    const linked = rawPath === '' ? file : path.resolve(path.dirname(file), decodeURIComponent(rawPath));
    if (!linked.startsWith(ROOT + path.sep) && linked !== ROOT) {
      broken.push(`${relative}: ${target} (outside the repository)`);
    } else if (!existsSync(linked)) {
      broken.push(`${relative}: ${target} (no such file or folder)`);
    } else if (fragment !== undefined && linked.endsWith('.md') && statSync(linked).isFile() && !anchorsOf(linked).has(fragment)) {
      broken.push(`${relative}: ${target} (no heading with that anchor)`);
    }
  }
  return broken;
}

const broken = markdownFiles().flatMap(brokenLinks);
if (broken.length > 0) {
  console.error(`Broken links in Markdown files:\n  ${broken.join('\n  ')}`);
  failed++;
} else {
  console.log('Markdown links: every relative link resolves');
}

process.exit(failed === 0 ? 0 : 1);
