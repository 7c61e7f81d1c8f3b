/**
 * What the real Python `pqc-mcp-transport` put on the wire (packages/test-kit/fixtures/python-peer/), read by core:
 * every canonical form equals the one Python computed from the same bytes, every handshake string is the one it
 * signed, and every signature verifies under the v1 profile (and only there).
 */
import { readPythonSession, type PythonServerKind } from '@pqc-mcp/test-kit';
import { MessageSigner, PeerIdentity } from '../src/index.js';

describe.each<PythonServerKind>(['standalone', 'asgi'])('the captured %s session', (kind) => {
  const session = readPythonSession(kind);
  const client = new PeerIdentity(session.identities.client.algorithm, session.identities.client.public_key);
  const server = new PeerIdentity(session.identities.server.algorithm, session.identities.server.public_key);
  const [handshake, ...messages] = session.exchanges;

  test('the identities are the seeds\' (DID = did:pqaid:sha3(public key))', () => {
    expect(client.did).toBe(session.identities.client.did);
    expect(server.did).toBe(session.identities.server.did);
  });

  test('the handshake strings are the ones Python signed', () => {
    const request = JSON.parse(handshake!.request.body) as Record<string, string>;
    const response = JSON.parse(handshake!.response.body) as Record<string, string>;
    expect(`${request.client_did}:${request.nonce}:${request.timestamp}`).toBe(handshake!.python.handshake_request_signed_string);
    expect(`${response.server_did}:${response.client_nonce}:${response.server_nonce}:${response.session_id}`).toBe(handshake!.python.handshake_response_signed_string);
  });

  test.each(messages.map((m) => [m.name, m] as const))('%s: canonical forms equal Python\'s; both signatures verify as v1 only', async (_name, exchange) => {
    expect(MessageSigner.canonicalize(exchange.request.body)).toBe(exchange.python.request_canonical);
    expect(MessageSigner.canonicalize(exchange.response.body)).toBe(exchange.python.response_canonical);
    const now = Date.parse((JSON.parse(exchange.request.body) as { _pqc: { timestamp: string } })._pqc.timestamp);
    expect(await MessageSigner.verifyMessage(exchange.request.body, { peer: client, profiles: [1], now })).toMatchObject({ valid: true, profile: 1 });
    expect(await MessageSigner.verifyMessage(exchange.response.body, { peer: server, profiles: [1], now })).toMatchObject({ valid: true, profile: 1 });
    expect(await MessageSigner.verifyMessage(exchange.request.body, { peer: client, now })).toMatchObject({ valid: false, reason: 'unsupported_version' });
  });
});
