/**
 * The bundles an edge user makes: `@pqc-mcp/core`, `@pqc-mcp/hono`, `@pqc-mcp/durable-object` and the example worker
 * (the MCP SDK v2 handler in it), each bundled by esbuild for a neutral platform (no Node built-ins provided) with
 * every dependency inside. The build itself fails on an unresolvable `node:` or bare built-in import; these tests
 * also read the output for any import or `require` of a built-in that could have been left for the runtime.
 */
import { builtinModules } from 'node:module';
import path from 'node:path';
import { build, type Metafile } from 'esbuild';
import { EDGE_WORKER_ENTRY, edgeBuildOptions } from '../../../examples/shared/edge.js';
import { ROOT } from './helpers.js';

const BUILTINS = new Set(builtinModules.flatMap((name) => [name, `node:${name}`, name.split('/')[0]!]));

function isBuiltin(specifier: string): boolean {
  return specifier.startsWith('node:') || BUILTINS.has(specifier) || BUILTINS.has(specifier.split('/')[0]!);
}

interface Bundled {
  text: string;
  imports: string[];
  bytes: number;
}

async function bundle(entry: string): Promise<Bundled> {
  const result = await build({ ...edgeBuildOptions([entry], path.join(ROOT, 'out.js')), write: false });
  const metafile = result.metafile as Metafile;
  const imports = Object.values(metafile.outputs).flatMap((output) => output.imports.map((i) => i.path));
  const text = result.outputFiles!.map((f) => f.text).join('\n');
  return { text, imports, bytes: text.length };
}

/** Every `import … from '<x>'`, `import('<x>')`, `export … from '<x>'` and `require('<x>')` target in bundled code. */
function moduleReferences(text: string): string[] {
  const found: string[] = [];
  const patterns = [
    /\bimport\s*(?:[\w*{}\s,$]+\s*from\s*)?["']([^"']+)["']/g,
    /\bexport\s*[\w*{}\s,$]+\s*from\s*["']([^"']+)["']/g,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
    /\brequire\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const pattern of patterns) for (const match of text.matchAll(pattern)) found.push(match[1]!);
  return found;
}

const ENTRIES: [string, string][] = [
  ['@pqc-mcp/core', path.join(ROOT, 'packages/core/src/index.ts')],
  ['@pqc-mcp/hono', path.join(ROOT, 'packages/hono/src/index.ts')],
  ['@pqc-mcp/durable-object', path.join(ROOT, 'packages/durable-object/src/index.ts')],
  ['examples/edge-worker.ts (with the MCP SDK, Hono, zod)', EDGE_WORKER_ENTRY],
];

describe.each(ENTRIES)('the %s bundle (esbuild, platform neutral)', (_name, entry) => {
  let bundled: Bundled;
  beforeAll(async () => {
    bundled = await bundle(entry);
  });

  test('builds with every dependency inside and no import left for the runtime but cloudflare:*', () => {
    expect(bundled.bytes).toBeGreaterThan(1000);
    expect(bundled.imports.filter((i) => !i.startsWith('cloudflare:'))).toEqual([]);
  });

  test('has no import or require of a Node built-in (node:* or bare crypto, fs, …)', () => {
    const references = moduleReferences(bundled.text);
    expect(references.filter(isBuiltin)).toEqual([]);
    expect(bundled.text).not.toMatch(/\b__require\(\s*["']/);
  });
});

test('the check would see a Node built-in import', async () => {
  // A bundle that imports node:crypto does not even build for the neutral platform…
  await expect(
    build({ ...edgeBuildOptions([], path.join(ROOT, 'out.js')), entryPoints: undefined, stdin: { contents: "import { createHash } from 'node:crypto'; console.log(createHash);", resolveDir: ROOT }, write: false }),
  ).rejects.toThrow(/node:crypto/);
  // …and one that leaves it external is caught by the reading of the output.
  const result = await build({
    ...edgeBuildOptions([], path.join(ROOT, 'out.js')),
    entryPoints: undefined,
    stdin: { contents: "import { readFileSync } from 'fs'; export const f = readFileSync;", resolveDir: ROOT },
    external: ['fs'],
    write: false,
  });
  expect(moduleReferences(result.outputFiles![0]!.text).filter(isBuiltin)).toEqual(['fs']);
});
