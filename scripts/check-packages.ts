/**
 * Packs every publishable package as npm users will get it and uses the tarballs from a scratch project outside the
 * workspace: publint and attw on each tarball, then `npm install` of the tarballs, `import()` and `require()` of every
 * entry, a type-check of every entry from ESM (nodenext), CommonJS (node10) and CommonJS under nodenext, and the CLI
 * binary. A broken `files` list, exports map or types path fails here, not in a user's project.
 *
 *   pnpm check:packages          (builds first; needs the npm registry for the peers)
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');

interface Manifest {
  name: string;
  private?: boolean;
  exports?: Record<string, unknown>;
  bin?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

function run(command: string, args: string[], cwd: string): string {
  try {
    return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')} failed in ${cwd}\n${e.stdout ?? ''}${e.stderr ?? ''}`.trim(), { cause: err });
  }
}

function publishable(): { dir: string; manifest: Manifest }[] {
  return readdirSync(path.join(ROOT, 'packages'))
    .map((name) => path.join(ROOT, 'packages', name))
    .map((dir) => ({ dir, manifest: JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Manifest }))
    .filter(({ manifest }) => !manifest.private);
}

/** Every import specifier a package offers (its exports map, minus package.json). */
function entries(manifest: Manifest): string[] {
  return Object.keys(manifest.exports ?? {})
    .filter((key) => key !== './package.json')
    .map((key) => (key === '.' ? manifest.name : `${manifest.name}/${key.slice(2)}`));
}

function main(): void {
  const work = mkdtempSync(path.join(tmpdir(), 'pqc-mcp-packages-'));
  const tarballs = path.join(work, 'tarballs');
  const project = path.join(work, 'project');
  mkdirSync(tarballs);
  mkdirSync(project);
  const failures: string[] = [];
  const step = (what: string, fn: () => void) => {
    try {
      fn();
      console.log(`ok   ${what}`);
    } catch (err) {
      failures.push(what);
      console.log(`FAIL ${what}\n${err instanceof Error ? err.message : String(err)}`);
    }
  };

  try {
    const packages = publishable();
    run('pnpm', ['run', 'build'], ROOT);
    const tgz = new Map<string, string>();
    for (const { dir, manifest } of packages) {
      const out = run('pnpm', ['pack', '--pack-destination', tarballs], dir).trim().split('\n').pop()!;
      tgz.set(manifest.name, path.resolve(dir, out));
      step(`publint ${manifest.name}`, () => {
        const report = run('npx', ['publint', 'run', tgz.get(manifest.name)!, '--level', 'warning', '--strict'], ROOT);
        if (!/All good!/.test(report)) throw new Error(report);
      });
      if (manifest.exports && entries(manifest).length > 0) {
        // require() of an ES module works from Node 20.19 / 22.12 and is typed by TypeScript >= 5.8 (module
        // nodenext); attw's bundled TypeScript predates that, so that one rule is left to the checks below.
        step(`attw ${manifest.name}`, () => void run('npx', ['attw', tgz.get(manifest.name)!, '--ignore-rules', 'cjs-resolves-to-esm'], ROOT));
      }
    }

    // A user's project: the tarballs (and each other, through overrides), the peers from the registry.
    const peers: Record<string, string> = {};
    for (const { manifest } of packages) Object.assign(peers, manifest.peerDependencies);
    const file = (name: string) => `file:${tgz.get(name)}`;
    writeFileSync(
      path.join(project, 'package.json'),
      JSON.stringify({
        name: 'pqc-mcp-package-check',
        private: true,
        dependencies: { ...Object.fromEntries([...tgz.keys()].map((name) => [name, file(name)])), ...peers, typescript: '~6.0.3', '@types/node': '^24.0.0' },
        overrides: Object.fromEntries([...tgz.keys()].map((name) => [name, file(name)])),
      }),
    );
    step('npm install of every tarball outside the workspace', () => void run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], project));

    const specifiers = packages.flatMap(({ manifest }) => entries(manifest));
    for (const specifier of specifiers) {
      step(`import('${specifier}')`, () => {
        const code = `const m = await import(${JSON.stringify(specifier)}); if (Object.keys(m).length === 0) throw new Error('no exports');`;
        run(process.execPath, ['--input-type=module', '-e', code], project);
      });
      step(`require('${specifier}')`, () => {
        const code = `const m = require(${JSON.stringify(specifier)}); if (Object.keys(m).length === 0) throw new Error('no exports');`;
        run(process.execPath, ['-e', code], project);
      });
    }

    // Types from every entry, in the three ways TypeScript projects resolve them.
    const uses = specifiers.map((s, i) => ({ s, name: `m${i}` }));
    writeFileSync(path.join(project, 'esm.mts'), uses.map(({ s, name }) => `import * as ${name} from ${JSON.stringify(s)};\nvoid ${name};`).join('\n'));
    writeFileSync(path.join(project, 'cjs.cts'), uses.map(({ s, name }) => `import ${name} = require(${JSON.stringify(s)});\nvoid ${name};`).join('\n'));
    writeFileSync(path.join(project, 'node10.ts'), uses.map(({ s, name }) => `import * as ${name} from ${JSON.stringify(s)};\nvoid ${name};`).join('\n'));
    const tsc = path.join(project, 'node_modules', 'typescript', 'bin', 'tsc');
    const strict = ['--noEmit', '--strict', '--skipLibCheck', 'false', '--types', 'node'];
    step('types from ESM (module nodenext)', () => void run(process.execPath, [tsc, ...strict, '--module', 'nodenext', 'esm.mts'], project));
    step('types from CommonJS (module nodenext, require of ESM)', () => void run(process.execPath, [tsc, ...strict, '--module', 'nodenext', 'cjs.cts'], project));
    step('types from CommonJS (module commonjs, node10 resolution)', () =>
      void run(process.execPath, [tsc, ...strict, '--module', 'commonjs', '--moduleResolution', 'node10', '--ignoreDeprecations', '6.0', 'node10.ts'], project),
    );

    for (const { manifest } of packages) {
      for (const bin of Object.keys(manifest.bin ?? {})) {
        step(`npx ${bin} --help`, () => {
          const out = run('npx', ['--no-install', bin, '--help'], project);
          if (!out.includes(bin)) throw new Error(out);
        });
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (failures.length > 0) {
    console.log(`\n${failures.length} check(s) failed: ${failures.join('; ')}`);
    process.exit(1);
  }
  console.log('\nevery package packs, installs, imports, requires and type-checks');
}

main();
