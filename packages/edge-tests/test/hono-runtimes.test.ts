/**
 * The Hono example server (examples/hono-server.ts, as it is, from its TypeScript sources) run by Node (tsx), Bun
 * and Deno from npm, each driven from this Node process by the MCP SDK client through `pqcFetch` and the raw
 * protocol client of the conformance suite: handshake, tools/list and tools/call with SSE and JSON responses, every
 * rejection of docs/PROTOCOL.md §6 (tampered and replayed requests among them), session expiry.
 */
import { runConformanceSuite, type StartServer } from '@pqc-mcp/test-kit';
import { bin, pqcVars, spawnServer, tempDir, writeServerIdentity } from './helpers.js';

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
  return async ({ json, pqc }) => {
    const tmp = await tempDir(`pqc-${runtime.name}-`);
    try {
      const env = {
        PORT: '0',
        PQC_IDENTITY: await writeServerIdentity(tmp.dir),
        PQC_JSON: json ? '1' : '',
        PQC_MCP_BACKEND: '',
        ...(await pqcVars(pqc)),
      };
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
      const info = (await (await fetch(new URL('pqc/handshake', server.url))).json()) as { did: string; backend: string };
      expect(info).toMatchObject({ did: server.did, backend: runtime.backend });
      expect(server.stderr()).toContain(`PQC backend: ${runtime.backend} (${runtime.name} `);
    } finally {
      await server.close();
      await tmp.remove();
    }
  });

  runConformanceSuite(`hono-server.ts on ${runtime.name}`, startOn(runtime));
});
