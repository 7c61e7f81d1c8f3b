/**
 * pqc-json (docs/PROTOCOL.md §2): the canonical text of a JSON value, exactly what CPython writes with
 * `json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))`, and the compact wire serializer.
 */
import { PQCTransportError } from '../errors.js';
import { JsonNumber, floatRepr, parseLossless } from './lossless.js';

function malformed(message: string): never {
  throw new PQCTransportError('malformed_json', `malformed JSON: ${message}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Strings (ensure_ascii)

const HEX = '0123456789abcdef';

function escapeUnit(c: number): string {
  switch (c) {
    case 0x22:
      return '\\"';
    case 0x5c:
      return '\\\\';
    case 0x0a:
      return '\\n';
    case 0x0d:
      return '\\r';
    case 0x09:
      return '\\t';
    case 0x08:
      return '\\b';
    case 0x0c:
      return '\\f';
    default:
      return '\\u' + HEX[c >>> 12] + HEX[(c >>> 8) & 15] + HEX[(c >>> 4) & 15] + HEX[c & 15];
  }
}

/** Python's `json.dumps(s)` with ensure_ascii: pure ASCII, lowercase `\uXXXX`, `/` unescaped. */
function canonicalString(s: string): string {
  const n = s.length;
  let i = 0;
  // Fast path: printable ASCII without `"` or `\` is written as is.
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) break;
  }
  if (i === n) return '"' + s + '"';
  let out = '"';
  let start = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e && c !== 0x22 && c !== 0x5c) continue;
    if (i > start) out += s.slice(start, i);
    out += escapeUnit(c);
    start = i + 1;
  }
  if (start < n) out += s.slice(start);
  return out + '"';
}

// ---------------------------------------------------------------------------------------------------------------
// Key order: Unicode code points (a surrogate pair is one code point above U+FFFF; a lone surrogate is its own)

function isHigh(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

function codePointAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (isHigh(c) && i + 1 < s.length) {
    const d = s.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
  }
  return c;
}

/** Orders strings by Unicode code point (what Python's `sorted` does on `str`). */
function compareCodePoints(a: string, b: string): number {
  const n = a.length < b.length ? a.length : b.length;
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  if (i === n) return a.length - b.length;
  const ca = a.charCodeAt(i);
  const cb = b.charCodeAt(i);
  if (ca < 0xd800 && cb < 0xd800) return ca - cb;
  // A shared high surrogate before i may start a pair in one string and stand alone in the other.
  if (i > 0 && isHigh(a.charCodeAt(i - 1))) {
    const d = codePointAt(a, i - 1) - codePointAt(b, i - 1);
    if (d !== 0) return d; // else it stands alone in both: compare from i
  }
  return codePointAt(a, i) - codePointAt(b, i);
}

function hasSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) return true;
  }
  return false;
}

/** Sorts `keys` in place by code point. */
function sortKeys(keys: string[]): void {
  const n = keys.length;
  if (n < 2) return;
  for (let i = 0; i < n; i++) {
    if (hasSurrogate(keys[i]!)) {
      keys.sort(compareCodePoints);
      return;
    }
  }
  // Without surrogates UTF-16 order is code point order. Insertion sort beats Array#sort on the small objects of
  // JSON-RPC messages.
  if (n > 24) {
    keys.sort();
    return;
  }
  for (let i = 1; i < n; i++) {
    const k = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > k) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = k;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Numbers

/** A plain JS number as JSON.stringify writes it, then read and written again by Python. */
function canonicalPlainNumber(x: number): string {
  if (!Number.isFinite(x)) malformed(`non-finite number ${x}`);
  const s = String(x);
  // JSON.stringify writes integers below 1e21 as digits (Python reads an int); anything else has '.' or 'e'.
  return Number.isInteger(x) && (x < 0 ? -x : x) < 1e21 ? s : floatRepr(x);
}

function plainNumberText(x: number): string {
  if (!Number.isFinite(x)) malformed(`non-finite number ${x}`);
  return String(x);
}

// ---------------------------------------------------------------------------------------------------------------
// Walks: one per output style, specialised because this is the hot path of every message.

/** Past this depth each container is checked against its ancestors, so a cycle throws instead of overflowing. */
const CYCLE_CHECK_DEPTH = 64;

function enter(value: object, stack: object[]): void {
  if (stack.length >= CYCLE_CHECK_DEPTH && stack.includes(value)) malformed('cyclic structure');
  stack.push(value);
}

const NOT_REPLACED: unique symbol = Symbol('not replaced');

/** What JSON.stringify writes instead of an array or object: its toJSON() result or its boxed primitive. */
function replacement(value: object, key: string | number): unknown {
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') return toJSON.call(value, typeof key === 'number' ? String(key) : key);
  if (value instanceof Number || value instanceof String || value instanceof Boolean) return value.valueOf();
  return NOT_REPLACED;
}

/**
 * Canonical text of `value`, or undefined when JSON.stringify would leave it out (undefined, function, symbol).
 * `key` is what toJSON() receives (an array index stays a number until then). A Map is written as an object.
 */
function canon(value: unknown, key: string | number, stack: object[]): string | undefined {
  if (typeof value === 'string') return canonicalString(value);
  if (typeof value === 'object') {
    if (value === null) return 'null';
    if (value instanceof JsonNumber) return value.toCanonical();
    if (value instanceof Map) return canonMap(value, stack);
    const r = replacement(value, key);
    if (r !== NOT_REPLACED) return canon(r, key, stack);
    return Array.isArray(value) ? canonArray(value, stack) : canonObject(value as Record<string, unknown>, stack);
  }
  if (typeof value === 'number') return canonicalPlainNumber(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'bigint') malformed('bigint is not JSON');
  return undefined; // undefined, function, symbol
}

function canonArray(arr: readonly unknown[], stack: object[]): string {
  const n = arr.length;
  if (n === 0) return '[]';
  enter(arr, stack);
  let out = '[' + (canon(arr[0], 0, stack) ?? 'null');
  for (let i = 1; i < n; i++) out += ',' + (canon(arr[i], i, stack) ?? 'null');
  stack.pop();
  return out + ']';
}

function canonMap(map: Map<unknown, unknown>, stack: object[]): string {
  if (map.size === 0) return '{}';
  enter(map, stack);
  const keys: string[] = [];
  for (const k of map.keys()) {
    if (typeof k !== 'string') malformed(`Map key of type ${typeof k}`);
    keys.push(k);
  }
  sortKeys(keys);
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const text = canon(map.get(k), k, stack);
    if (text !== undefined) out += (out.length === 1 ? '' : ',') + canonicalString(k) + ':' + text;
  }
  stack.pop();
  return out + '}';
}

function canonObject(obj: Record<string, unknown>, stack: object[]): string {
  const keys = Object.keys(obj);
  if (keys.length === 0) return '{}';
  enter(obj, stack);
  sortKeys(keys);
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const text = canon(obj[k], k, stack);
    if (text !== undefined) out += (out.length === 1 ? '' : ',') + canonicalString(k) + ':' + text;
  }
  stack.pop();
  return out + '}';
}

/** Wire text of `value` (insertion order, lexemes kept), or undefined as for {@link canon}. */
function wire(value: unknown, key: string | number, stack: object[]): string | undefined {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'object') {
    if (value === null) return 'null';
    if (value instanceof JsonNumber) return value.lexeme;
    if (value instanceof Map) return wireMap(value, stack);
    const r = replacement(value, key);
    if (r !== NOT_REPLACED) return wire(r, key, stack);
    return Array.isArray(value) ? wireArray(value, stack) : wireObject(value as Record<string, unknown>, stack);
  }
  if (typeof value === 'number') return plainNumberText(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'bigint') malformed('bigint is not JSON');
  return undefined;
}

function wireArray(arr: readonly unknown[], stack: object[]): string {
  const n = arr.length;
  if (n === 0) return '[]';
  enter(arr, stack);
  let out = '[' + (wire(arr[0], 0, stack) ?? 'null');
  for (let i = 1; i < n; i++) out += ',' + (wire(arr[i], i, stack) ?? 'null');
  stack.pop();
  return out + ']';
}

function wireMap(map: Map<unknown, unknown>, stack: object[]): string {
  enter(map, stack);
  let out = '{';
  for (const [k, v] of map) {
    if (typeof k !== 'string') malformed(`Map key of type ${typeof k}`);
    const text = wire(v, k, stack);
    if (text !== undefined) out += (out.length === 1 ? '' : ',') + JSON.stringify(k) + ':' + text;
  }
  stack.pop();
  return out + '}';
}

function wireObject(obj: Record<string, unknown>, stack: object[]): string {
  enter(obj, stack);
  let out = '{';
  for (const k of Object.keys(obj)) {
    const text = wire(obj[k], k, stack);
    if (text !== undefined) out += (out.length === 1 ? '' : ',') + JSON.stringify(k) + ':' + text;
  }
  stack.pop();
  return out + '}';
}

/**
 * pqc-json canonical text of a value that may mix lossless nodes (`Map`, {@link JsonNumber}) and plain JS values.
 * Plain JS numbers are rendered as JSON.stringify writes them, then read as Python would (7 → `7`, 1e-7 → `1e-07`,
 * 1e21 → `1e+21`). Members whose value is undefined/function/symbol are skipped; `toJSON()` is honoured.
 * Non-finite numbers, bigint, non-string Map keys and cycles throw `PQCTransportError('malformed_json')`.
 */
export function canonicalJson(value: unknown): string {
  const out = canon(value, '', []);
  if (out === undefined) malformed(`${typeof value} is not JSON`);
  return out;
}

/** docs/PROTOCOL.md §2 on a text: the canonical form of a received JSON text (strict lossless parse, then canonicalJson). */
export function canonicalText(text: string | Uint8Array): string {
  return canonicalJson(parseLossless(text));
}

/**
 * Compact JSON of a mixed value in insertion order, number lexemes kept as written, strings as JSON.stringify writes
 * them: the text a sender puts on the wire. Throws `PQCTransportError('malformed_json')` where canonicalJson does
 * (JSON.stringify would write `null` for a non-finite number; this refuses it).
 */
export function serializeJson(value: unknown): string {
  const out = wire(value, '', []);
  if (out === undefined) malformed(`${typeof value} is not JSON`);
  return out;
}
