/**
 * The README's quick starts, run as a user runs them: each server snippet in a process of its own (`tsx`), and each
 * client snippet against it with the URL and DID the server printed. Every client must get its answers, and every
 * server must stop on SIGINT by closing what it opened (a server that hangs on would fail here).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { ROOT, writeDocBlocks } from '../../scripts/readme-blocks.ts';

const dir = path.join(ROOT, 'examples', '.readme-run');
const files = writeDocBlocks('README.md', dir);
const servers = files.filter((f) => f.startsWith('server-'));
const clients = files.filter((f) => f.startsWith('client'));
const tsx = require.resolve('tsx/cli', { paths: [ROOT] });

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
    probe.on('error', reject);
  });
}

function run(file: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [tsx, '--conditions=@pqc-mcp/source', file, ...args], {
    cwd: dir,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Resolves what the process printed once it exits (with its exit code). */
function finished(child: ChildProcess): Promise<{ code: number | null; out: string }> {
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk));
  child.stderr!.on('data', (chunk: Buffer) => (out += chunk));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out })));
}

/** Waits for the server's line `<url> <did>`. */
function announced(child: ChildProcess): Promise<{ url: string; did: string }> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no URL and DID printed in 60 s:\n${out}`)), 60_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk;
      const m = /(http:\/\/\S+\/mcp) (did:pqaid:[0-9a-f]{64})/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1]!, did: m[2]! });
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (out += chunk));
    child.on('exit', (code) => reject(new Error(`exited (${code}) before announcing itself:\n${out}`)));
  });
}

test('the README has the quick starts this test runs', () => {
  expect(servers.sort()).toEqual(['server-express.ts', 'server-fastify.ts', 'server-hono.ts', 'server-standalone.ts']);
  expect(clients.sort()).toEqual(['client-sdk.ts', 'client.ts']);
});

describe.each(servers)('%s', (server) => {
  let child: ChildProcess;
  let exit: Promise<{ code: number | null; out: string }>;
  let target: { url: string; did: string };

  beforeAll(async () => {
    child = run(server, [], { PORT: String(await freePort()) });
    exit = finished(child);
    target = await announced(child);
  }, 90_000);
  afterAll(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });

  test.each(clients)('%s calls echo and add, pinned to the DID the server printed', async (client) => {
    const { code, out } = await finished(run(client, [target.url, target.did]));
    expect({ code, out }).toEqual({ code: 0, out: expect.stringContaining('hello') });
    expect(out).toMatch(/text: '5'|"text":"5"/);
  }, 90_000);

  test('a client pinned to another DID is refused', async () => {
    const { code, out } = await finished(run(clients[0]!, [target.url, `did:pqaid:${'0'.repeat(64)}`]));
    expect(code).not.toBe(0);
    expect(out).toContain('peer_mismatch');
  }, 90_000);

  test('stops on SIGINT, closing what it opened', async () => {
    child.kill('SIGINT');
    const { code } = await exit;
    expect(code).toBe(0);
  }, 30_000);
});
