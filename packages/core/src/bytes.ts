/** Byte helpers used on hot paths: lowercase hex, base64url, UTF-8, randomness. */

const HEX = '0123456789abcdef';
const HEX_PAIRS: string[] = Array.from({ length: 256 }, (_, i) => HEX[i >> 4]! + HEX[i & 15]!);

/** Lowercase hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += HEX_PAIRS[bytes[i]!];
  return out;
}

const LOWER_HEX_RE = /^(?:[0-9a-f]{2})*$/;

/** True when `text` is an even-length string of lowercase hex digits (PROTOCOL.md §1: no other form is accepted). */
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

/** `length` cryptographically random bytes (Web Crypto, present on every supported runtime). */
export function randomBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  globalThis.crypto.getRandomValues(out);
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
