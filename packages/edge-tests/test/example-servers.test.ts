/**
 * The entry points a user runs, as they are: `pnpm example:server express|fastify|hono` (scripts/example-server.ts)
 * and `pnpm example:edge` (examples/edge-serve.ts: the edge worker bundled and served by workerd), each in its own
 * process with a server identity file: the READY line with that identity's DID, the backend said on stderr, a signed
 * tool call through `PQCMCPClient`, and on SIGTERM an exit with status 0 that leaves nothing of the server's in the
 * temp folder.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { PQCMCPClient } from '@pqc-mcp/mcp';
import { CONFORMANCE_SERVER_IDENTITY, seededIdentity } from '@pqc-mcp/test-kit';
import { ROOT, tempDir, writeServerIdentity } from './helpers.js';

const SERVER = CONFORMANCE_SERVER_IDENTITY;
const CLIENT = seededIdentity(22);

interface Started {
  child: ChildProcess;
  url: string;
  did: string;
  stderr(): string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `node --import tsx --conditions=@pqc-mcp/source <script> <args>` until its READY line (its own pid only, no group). */
function startEntry(script: string, args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<Started> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@pqc-mcp/source', script, ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1', PQC_MCP_BACKEND: '', PQC_JSON: '', PQC_PROFILES: '', PQC_REDIS_URL: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${script} ${args.join(' ')}: ${why}\nstdout: ${stdout}\nstderr: ${stderr}`));
    };
    const timer = setTimeout(() => fail(`no READY line within ${timeoutMs} ms`), timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      const match = /^READY (\S+) (did:pqaid:[0-9a-f]{64})$/m.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve({ child, url: match[1]!, did: match[2]!, stderr: () => stderr, exit });
      }
    });
    void exit.then(({ code, signal }) => fail(`exited with ${code ?? signal} before READY`));
  });
}

/** Resolves once `read()` matches `pattern` (rejects after `ms`). */
async function eventually(read: () => string, pattern: RegExp, ms = 10_000): Promise<RegExpExecArray> {
  for (const end = Date.now() + ms; ; await new Promise((resolve) => setTimeout(resolve, 50))) {
    const match = pattern.exec(read());
    if (match) return match;
    if (Date.now() > end) throw new Error(`no ${pattern} in:\n${read()}`);
  }
}

const ENTRIES: [name: string, script: string, args: string[], backend: RegExp][] = [
  ['pnpm example:server express', 'scripts/example-server.ts', ['express'], /^PQC backend: (\S+) \(node /m],
  ['pnpm example:server fastify', 'scripts/example-server.ts', ['fastify'], /^PQC backend: (\S+) \(node /m],
  ['pnpm example:server hono', 'scripts/example-server.ts', ['hono'], /^PQC backend: (\S+) \(node /m],
  // workerd has no ML-DSA in WebCrypto: the worker signs with noble, and says so in its log.
  ['pnpm example:edge', 'examples/edge-serve.ts', [], /^PQC backend: (noble) \(workerd\)$/m],
];

describe.each(ENTRIES)('%s', (_name, script, args, backend) => {
  test("READY with the identity of PQC_IDENTITY, the backend on stderr, a signed tool call; SIGTERM: exit 0, nothing of the server's left in the temp folder", async () => {
    const home = await tempDir('pqc-entry-');
    const tmp = await tempDir('pqc-entry-tmp-');
    try {
      const server = await startEntry(script, args, { PORT: '0', PQC_IDENTITY: await writeServerIdentity(home.dir), TMPDIR: tmp.dir });
      let exited = false;
      try {
        expect(server.did).toBe(SERVER.did);
        await eventually(server.stderr, backend);
        const client = new PQCMCPClient({ identity: CLIENT, serverUrl: server.url, serverDid: SERVER.did });
        await client.connect();
        expect(await client.callTool('add', { a: 20, b: 22 })).toMatchObject({ content: [{ type: 'text', text: '42' }] });
        await client.close();
        expect(client.getAuditLog().filter((e) => e.operation === 'rejected')).toEqual([]);

        server.child.kill('SIGTERM');
        expect(await server.exit).toEqual({ code: 0, signal: null });
        exited = true;
        // What the server made there is gone (tsx keeps its compile cache there: not the server's).
        expect((await readdir(tmp.dir)).filter((name) => !/^tsx-\d+$/.test(name))).toEqual([]);
      } finally {
        if (!exited) {
          server.child.kill('SIGKILL');
          await server.exit;
        }
      }
    } finally {
      await home.remove();
      await tmp.remove();
    }
  });
});

test('pnpm example:server without a framework says how to call it and exits 2', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@pqc-mcp/source', path.join('scripts', 'example-server.ts')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect({ code, stderr }).toEqual({ code: 2, stderr: 'usage: pnpm example:server <express|fastify|hono>\n' });
});
