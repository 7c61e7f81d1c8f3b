/** HTTP pieces shared by the server and the client: error bodies (docs/PROTOCOL.md §6), bounded body reads, headers. */
import { PQCTransportError, REASON_HTTP_STATUS, isPQCReason, type PQCReason } from './errors.js';
import { PQC_ERROR_CODE } from './protocol.js';

/** A JSON-RPC id as an error reply carries it. */
export type JsonRpcId = string | number | null;

/** The JSON-RPC error object of a PQC rejection (§6), as a plain object (to sign, or to serialize as it is). */
export function pqcErrorMessage(reason: PQCReason, id: JsonRpcId = null, detail?: string): Record<string, unknown> {
  return {
    jsonrpc: '2.0',
    id,
    error: { code: PQC_ERROR_CODE, message: `PQC authentication failed: ${reason}${detail ? `: ${detail}` : ''}`, data: { pqc: reason } },
  };
}

/** The headers of a rejection with `status` (§6): `WWW-Authenticate` on 401, `Retry-After` on 503. */
export function rejectionHeaders(status: number, handshakeUrl: string): Headers {
  const headers = new Headers({ 'content-type': 'application/json', 'cache-control': 'no-store' });
  if (status === 401) headers.set('www-authenticate', `PQC handshake="${handshakeUrl}"`);
  if (status === 503) headers.set('retry-after', '1');
  // The unread rest of an oversized body would poison a kept-alive connection: close it after this answer.
  if (status === 413) headers.set('connection', 'close');
  return headers;
}

/** The unsigned `Response` of a PQC rejection: the status of §6 and its headers. */
export function pqcErrorResponse(reason: PQCReason, id: JsonRpcId, handshakeUrl: string, detail?: string): Response {
  const status = REASON_HTTP_STATUS[reason];
  return new Response(JSON.stringify(pqcErrorMessage(reason, id, detail)), { status, headers: rejectionHeaders(status, handshakeUrl) });
}

/** The PQC reason of an error response body, when it is one (a client's reading of §6). */
export function pqcReasonOf(body: unknown): PQCReason | undefined {
  const data = (body as { error?: { data?: { pqc?: unknown } } } | null)?.error?.data?.pqc;
  return isPQCReason(data) ? data : undefined;
}

/**
 * The bytes of a body, at most `maxBytes`: a declared `content-length` over the limit is refused before reading, and
 * a body that grows past it is cancelled as soon as it does. Throws `PQCTransportError('body_too_large')`.
 */
export async function readBodyLimited(body: ReadableStream<Uint8Array> | null, maxBytes: number, declaredLength?: string | null): Promise<Uint8Array> {
  if (declaredLength !== undefined && declaredLength !== null && Number(declaredLength) > maxBytes) {
    await body?.cancel().catch(() => {});
    throw new PQCTransportError('body_too_large', `body of ${declaredLength} bytes exceeds ${maxBytes}`);
  }
  if (!body) return new Uint8Array(0);
  const bytes = await readAtMost(body, maxBytes);
  if (!bytes) throw new PQCTransportError('body_too_large', `body exceeds ${maxBytes} bytes`);
  return bytes;
}

/**
 * The whole of a stream if it holds at most `maxBytes`; `undefined` (and the rest cancelled) as soon as it grows past
 * them. One copy at most: a body that came in one chunk is returned as it is.
 */
export async function readAtMost<B extends ArrayBufferLike>(
  body: ReadableStream<Uint8Array<B>>,
  maxBytes: number,
): Promise<Uint8Array<B> | Uint8Array<ArrayBuffer> | undefined> {
  const reader = body.getReader();
  const chunks: Uint8Array<B>[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      return undefined;
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

/** Statuses whose responses have no body. */
export const NO_BODY_STATUS: ReadonlySet<number> = new Set([101, 204, 205, 304]);
