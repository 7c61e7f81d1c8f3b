/**
 * The lead's conformance suite (docs/PROTOCOL.md §3–§6 over HTTP) against the real gateway binary in front of the
 * examples' unmodified MCP SDK app. The upstream runs in this process, so the suite also checks that nothing
 * rejected ever reaches it and that it never sees `_pqc`.
 */
import type { PQCServerOptions } from '@pqc-mcp/core';
import { createWebMcpApp } from '../../../examples/shared/tools.js';
import { CONFORMANCE_SERVER_IDENTITY, conformancePeers, runConformanceSuite, type StartServer } from '@pqc-mcp/test-kit';
import { startGatewayProcess, startPlainUpstream, tempDir } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** The suite's options as gateway flags; an option the gateway has no flag for fails loudly. */
function gatewayFlags(pqc: PQCServerOptions): string[] {
  const flags: string[] = [];
  for (const [key, value] of Object.entries(pqc)) {
    if (value === undefined) continue;
    switch (key) {
      case 'identity':
        break;
      case 'maxBodyBytes':
        flags.push('--max-body', String(value));
        break;
      case 'sessionTtlSec':
        flags.push('--session-ttl', String(value));
        break;
      case 'clockSkewSec':
        flags.push('--clock-skew', String(value));
        break;
      case 'profiles':
        flags.push('--profiles', (value as number[]).map((p) => `v${p}`).join(','));
        break;
      case 'authorize': {
        // The gateway takes a list of DIDs: the same decision, made for every client the suite connects with.
        const authorize = value as (peer: unknown) => boolean;
        for (const peer of conformancePeers()) if (authorize(peer.toPeer())) flags.push('--allow', peer.did);
        break;
      }
      default:
        throw new Error(`the gateway has no flag for the suite's option ${key}`);
    }
  }
  return flags;
}

let runs = 0;
const startGatewayForConformance: StartServer = async ({ json, pqc }) => {
  const identityFile = tmp.path(`server-${runs++}.json`);
  await CONFORMANCE_SERVER_IDENTITY.save(identityFile);
  const upstream = await startPlainUpstream(createWebMcpApp({ enableJsonResponse: json }));
  const gateway = await startGatewayProcess(['--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', identityFile, ...gatewayFlags(pqc)]);
  return {
    url: gateway.url,
    seen: upstream.seen,
    close: async () => {
      await gateway.stop('SIGTERM');
      await upstream.close();
    },
  };
};

runConformanceSuite('pqc-mcp gateway (binary)', startGatewayForConformance);
