/** HTTP pieces shared by the server and the client: error bodies (docs/PROTOCOL.md §6), bounded body reads, headers. */
import { PQC_ERROR_CODE, PQCTransportError, REASON_HTTP_STATUS, isPQCReason, type PQCReason } from './errors.js';

/** The header that carries a GET or DELETE request's envelope (docs/PROTOCOL.md §4). */
export const PQC_ENVELOPE_HEADER = 'PQC-Envelope';

/** Default bound on a request body: 4 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

/** The JSON-RPC error object of a PQC rejection. Unsigned on purpose (§6). */
export function pqcErrorBody(reason: PQCReason, id: string | number | null = null): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    error: { code: PQC_ERROR_CODE, message: `PQC authentication failed: ${reason}`, data: { pqc: reason } },
  });
}

/** The `Response` of a PQC rejection: status of §6, and `WWW-Authenticate` on 401. */
export function pqcErrorResponse(reason: PQCReason, id: string | number | null, handshakeUrl: string): Response {
  const status = REASON_HTTP_STATUS[reason];
  const headers = new Headers({ 'content-type': 'application/json' });
  if (status === 401) headers.set('www-authenticate', `PQC handshake="${handshakeUrl}"`);
  if (status === 503) headers.set('retry-after', '1');
  // The unread rest of an oversized body would poison a kept-alive connection: close it after this answer.
  if (status === 413) headers.set('connection', 'close');
  return new Response(pqcErrorBody(reason, id), { status, headers });
}

/** The PQC reason of an error response body, when it is one (a client's reading of §6). */
export function pqcReasonOf(body: unknown): PQCReason | undefined {
  const data = (body as { error?: { data?: { pqc?: unknown } } } | null)?.error?.data?.pqc;
  return isPQCReason(data) ? data : undefined;
}

/**
 * The body of `request`, at most `maxBytes`: a declared `content-length` over the limit is refused before reading,
 * and a body that grows past it is cancelled as soon as it does. Throws `PQCTransportError('body_too_large')`.
 */
export async function readBodyLimited(request: Request, maxBytes: number): Promise<Uint8Array> {
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > maxBytes) {
    await request.body?.cancel().catch(() => {});
    throw new PQCTransportError('body_too_large', `body of ${declared} bytes exceeds ${maxBytes}`);
  }
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new PQCTransportError('body_too_large', `body exceeds ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/** The media type of a `content-type` header, lowercased, without parameters. */
export function mediaType(headers: Headers): string {
  const value = headers.get('content-type');
  return value ? value.split(';', 1)[0]!.trim().toLowerCase() : '';
}

/** A copy of `headers` without those that describe the old body's bytes. */
export function headersForNewBody(headers: Headers): Headers {
  const out = new Headers(headers);
  out.delete('content-length');
  out.delete('content-encoding');
  out.delete('etag');
  return out;
}

/** The handshake path of an MCP endpoint path: `new URL('pqc/handshake', endpoint)` (docs/PROTOCOL.md §5). */
export function handshakePathFor(endpointPath: string): string {
  return new URL('pqc/handshake', new URL(endpointPath, 'http://localhost')).pathname;
}
