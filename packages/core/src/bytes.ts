/** Byte helpers used on hot paths: lowercase hex, base64url, UTF-8, randomness. */
import { nodeBuiltin } from './runtime.js';

const HEX = '0123456789abcdef';
const HEX_PAIRS: string[] = Array.from({ length: 256 }, (_, i) => HEX[i >> 4]! + HEX[i & 15]!);

/** The part of Node's `Buffer` used for hex (Node, Bun and Deno have it as `node:buffer`). */
interface HexBuffer {
  toString(encoding: 'hex'): string;
  write(text: string, offset: number, length: number, encoding: 'hex'): number;
}
type BufferClass = { from(buffer: ArrayBufferLike, byteOffset: number, length: number): HexBuffer };

/**
 * Native hex through `node:buffer` where the runtime has it: 5-20x faster than the JS loops for a 3.3 KB ML-DSA
 * signature (about 2 µs against 30-50 µs), which every signed message converts once each way. Checked once against
 * the JS result; `undefined` elsewhere (workerd, browsers), where the loops below are used.
 */
let nativeHex: BufferClass | null | undefined;

function hexBuffer(): BufferClass | null {
  if (nativeHex === undefined) {
    nativeHex = null;
    const Buffer = nodeBuiltin<{ Buffer?: BufferClass }>('node:buffer')?.Buffer;
    if (Buffer && typeof Buffer.from === 'function') {
      try {
        const probe = new Uint8Array([0x00, 0x9f, 0xff]);
        const out = new Uint8Array(3);
        if (
          Buffer.from(probe.buffer, 0, 3).toString('hex') === '009fff' &&
          Buffer.from(out.buffer, 0, 3).write('009fff', 0, 3, 'hex') === 3 &&
          out[1] === 0x9f
        ) {
          nativeHex = Buffer;
        }
      } catch {
        // not Node's Buffer: keep the loops
      }
    }
  }
  return nativeHex;
}

/** Below this many bytes the JS loops are as fast as a call into the runtime. */
const NATIVE_HEX_MIN = 64;

/** Lowercase hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  if (bytes.length >= NATIVE_HEX_MIN) {
    const Buffer = hexBuffer();
    if (Buffer) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
  }
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += HEX_PAIRS[bytes[i]!];
  return out;
}

const LOWER_HEX_RE = /^(?:[0-9a-f]{2})*$/;

/** True when `text` is an even-length string of lowercase hex digits (docs/PROTOCOL.md §1: no other form is accepted). */
export function isLowerHex(text: unknown, byteLength?: number): text is string {
  if (typeof text !== 'string') return false;
  if (byteLength !== undefined && text.length !== byteLength * 2) return false;
  return LOWER_HEX_RE.test(text);
}

function nibble(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/** Decodes lowercase hex; throws `TypeError` on anything else. */
export function fromHex(text: string): Uint8Array {
  if (text.length % 2 !== 0) throw new TypeError('hex string has odd length');
  if (text.length >= 2 * NATIVE_HEX_MIN) {
    const Buffer = hexBuffer();
    if (Buffer) {
      const out = decodeNative(Buffer, text);
      if (!out) throw new TypeError('not lowercase hex');
      return out;
    }
  }
  return decodeHexLoop(text);
}

/**
 * The bytes of `text` when it is lowercase hex of even length (what `isLowerHex` accepts), else `undefined`: one
 * pass that both checks and decodes (the envelope parser decodes each signature with it, once).
 */
export function decodeLowerHex(text: unknown): Uint8Array | undefined {
  if (typeof text !== 'string' || text.length % 2 !== 0) return undefined;
  const Buffer = text.length >= 2 * NATIVE_HEX_MIN ? hexBuffer() : null;
  if (Buffer) return decodeNative(Buffer, text);
  try {
    return decodeHexLoop(text);
  } catch {
    return undefined;
  }
}

/**
 * Native decode straight into a fresh `Uint8Array` of its own (never a view of Node's shared pool). Node's decoder
 * stops at the first bad pair and also takes uppercase: encoding the result again and comparing keeps it strict
 * (faster than a regular expression over the text first).
 */
function decodeNative(Buffer: BufferClass, text: string): Uint8Array | undefined {
  const out = new Uint8Array(text.length / 2);
  const view = Buffer.from(out.buffer, 0, out.length);
  if (view.write(text, 0, out.length, 'hex') !== out.length || view.toString('hex') !== text) return undefined;
  return out;
}

function decodeHexLoop(text: string): Uint8Array {
  if (text.length % 2 !== 0) throw new TypeError('hex string has odd length');
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = nibble(text.charCodeAt(2 * i));
    const lo = nibble(text.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) throw new TypeError('not lowercase hex');
    out[i] = (hi << 4) | lo;
  }
  return out;
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64URL_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < B64URL.length; i++) B64URL_INDEX[B64URL.charCodeAt(i)] = i;

/** Unpadded base64url (RFC 4648 §5), as JWKs use. */
export function toBase64Url(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += B64URL[n >> 18]! + B64URL[(n >> 12) & 63]! + B64URL[(n >> 6) & 63]! + B64URL[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += B64URL[n >> 18]! + B64URL[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += B64URL[n >> 18]! + B64URL[(n >> 12) & 63]! + B64URL[(n >> 6) & 63]!;
  }
  return out;
}

/** Decodes unpadded base64url; throws `TypeError` on any other character or a impossible length. */
export function fromBase64Url(text: string): Uint8Array {
  if (text.length % 4 === 1) throw new TypeError('invalid base64url length');
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const v = code < 128 ? B64URL_INDEX[code]! : -1;
    if (v < 0) throw new TypeError('invalid base64url character');
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

const encoder = new TextEncoder();

/** UTF-8 bytes of `text`. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Random bytes drawn ahead for small requests (a nonce per signed message): one `getRandomValues` call per 4 KiB. */
const RANDOM_CACHE_BYTES = 4096;
let randomCache: Uint8Array<ArrayBuffer> | undefined;
let randomOffset = RANDOM_CACHE_BYTES;

/**
 * `length` cryptographically random bytes (Web Crypto, present on every supported runtime). Requests of at most
 * 64 bytes are served from a cache drawn 4 KiB at a time (as Node's `randomUUID` does): each byte is handed out once.
 */
export function randomBytes(length: number): Uint8Array {
  if (length > 64) {
    const out = new Uint8Array(length);
    globalThis.crypto.getRandomValues(out);
    return out;
  }
  if (randomOffset + length > RANDOM_CACHE_BYTES) {
    randomCache ??= new Uint8Array(RANDOM_CACHE_BYTES);
    globalThis.crypto.getRandomValues(randomCache);
    randomOffset = 0;
  }
  const out = randomCache!.slice(randomOffset, randomOffset + length);
  randomCache!.fill(0, randomOffset, randomOffset + length);
  randomOffset += length;
  return out;
}

/** Constant-time equality of two byte arrays or two strings of the same encoding. */
export function timingSafeEqual(a: Uint8Array | string, b: Uint8Array | string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  if (typeof a === 'string' && typeof b === 'string') {
    for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  } else if (typeof a !== 'string' && typeof b !== 'string') {
    for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  } else {
    return false;
  }
  return diff === 0;
}
