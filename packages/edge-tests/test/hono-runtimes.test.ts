/**
 * The Hono example server (examples/hono-server.ts, as it is, from its TypeScript sources) run by Node (tsx), Bun
 * and Deno from npm, each driven from this Node process by the MCP SDK clients (1.x, and v2 in each era) through
 * `pqcFetch` and the raw protocol client of the conformance suite: handshake, tools/list and tools/call with SSE and
 * JSON responses, every rejection of docs/PROTOCOL.md §6 (tampered and replayed requests among them), session expiry.
 */
import { CONFORMANCE_SERVER_IDENTITY, runConformanceSuite, type StartServer } from '@pqc-mcp/test-kit';
import { bin, serverVars, spawnServer, tempDir, writeServerIdentity } from './helpers.js';

const ENTRY = 'examples/hono-server.ts';

interface Runtime {
  name: string;
  command: () => string;
  args: string[];
  /** The ML-DSA backend the runtime must pick (auto): what it has, not what the test asks for. */
  backend: string;
}

const NODE_MAJOR = Number(process.versions.node.split('.')[0]);

const RUNTIMES: Runtime[] = [
  // Node 24 has native ML-DSA (`node`); Node 20 has none (noble).
  {
    name: 'node',
    command: () => process.execPath,
    args: ['--import', 'tsx', '--conditions=@pqc-mcp/source', ENTRY],
    backend: NODE_MAJOR >= 24 ? 'node' : 'noble',
  },
  // Bun's node:crypto ML-DSA refuses contexts; its WebCrypto honours them.
  { name: 'bun', command: () => bin('bun'), args: ['--conditions=@pqc-mcp/source', ENTRY], backend: 'webcrypto' },
  // Deno's WebCrypto ML-DSA rejects a non-empty context, its node:crypto has no ML-DSA.
  {
    name: 'deno',
    command: () => bin('deno'),
    args: ['run', '--allow-net=127.0.0.1', '--allow-env', '--allow-read', '--sloppy-imports', '--conditions=@pqc-mcp/source', ENTRY],
    backend: 'noble',
  },
];

function startOn(runtime: Runtime): StartServer {
  return async (options) => {
    const vars = await serverVars(options);
    const tmp = await tempDir(`pqc-${runtime.name}-`);
    try {
      const env = { PORT: '0', PQC_IDENTITY: await writeServerIdentity(tmp.dir), PQC_JSON: '', PQC_MCP_BACKEND: '', ...vars };
      const server = await spawnServer(runtime.command(), runtime.args, env);
      return {
        url: server.url,
        close: async () => {
          await server.close();
          await tmp.remove();
        },
      };
    } catch (err) {
      await tmp.remove();
      throw err;
    }
  };
}

describe.each(RUNTIMES)('the Hono example server on $name', (runtime) => {
  test(`starts, prints READY and reports the ${runtime.backend} backend`, async () => {
    const tmp = await tempDir(`pqc-${runtime.name}-`);
    const server = await spawnServer(runtime.command(), runtime.args, { PORT: '0', PQC_IDENTITY: await writeServerIdentity(tmp.dir), PQC_MCP_BACKEND: '' });
    try {
      // The server identity at GET pqc/handshake (exactly what §5 lists: no backend there), the backend on stderr.
      const info = await (await fetch(new URL('pqc/handshake', server.url))).json();
      const identity = CONFORMANCE_SERVER_IDENTITY;
      expect(info).toEqual({ did: identity.did, algorithm: identity.algorithm, public_key: identity.publicKeyHex, versions: [2] });
      expect(server.did).toBe(identity.did);
      expect(server.stderr()).toContain(`PQC backend: ${runtime.backend} (${runtime.name} `);
    } finally {
      await server.close();
      await tmp.remove();
    }
  });

  // The example serves the MCP SDK v2 handler only (the 1.x servers of the suite are in-process test apps). The
  // expiry test's handshake and initialize (eight ML-DSA operations, noble on Node 20 and Deno, across processes) can
  // outlast a 1 s session on a loaded machine: it gets 3 s.
  runConformanceSuite(`hono-server.ts on ${runtime.name}`, startOn(runtime), { sdks: ['v2'], expiryTtlSec: 3 });
});
