/**
 * What a request is to the PQC layer when its URL is one a web runtime cannot turn into a `Request`: an absolute-form
 * target with credentials (`POST http://user@h/mcp`) that a framework still routes to the endpoint. The routing fuzz
 * of the test kit sends these over real sockets to every adapter; here the core's answer, on its own.
 */
import { createPQCHandler, type PQCRequestResult } from '../src/index.js';
import { seededIdentity } from '@pqc-mcp/test-kit';

const SERVER = seededIdentity(44);

/**
 * A request as @hono/node-server hands one on for `POST http://user@h/mcp`: its URL keeps the credentials, and reading
 * its body builds a real `Request` from that URL, which throws.
 */
function credentialedRequest(method: string, url: string): Request {
  return {
    url,
    method,
    headers: new Headers({ 'content-type': 'application/json' }),
    signal: new AbortController().signal,
    get body(): never {
      throw new TypeError(`Request cannot be constructed from a URL that includes credentials: ${url}`);
    },
  } as unknown as Request;
}

describe('a request URL with credentials', () => {
  test.each([
    ['POST', 'http://user@h/mcp'],
    ['POST', 'http://user:pw@h/api/mcp'],
    ['POST', 'http://h@evil/mcp/'],
    ['GET', 'http://user@h/mcp'],
    ['DELETE', 'http://user@h/mcp'],
  ])('%s %s: refused with invalid_envelope (400), the application never runs', async (method, url) => {
    const results: PQCRequestResult[] = [];
    const handler = createPQCHandler({ identity: SERVER, onResult: (result) => results.push({ ...result }) });
    const response = await handler.handle(credentialedRequest(method, url), () => Promise.reject(new Error('app ran')));
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ id: null, error: { data: { pqc: 'invalid_envelope' } } });
    expect(results).toMatchObject([{ kind: 'rejected', status: 400, reason: 'invalid_envelope' }]);
  });
});
