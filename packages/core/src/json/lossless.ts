/**
 * Strict, lossless JSON parsing (docs/PROTOCOL.md §2): RFC 8259 only, every number keeps the lexeme its sender wrote,
 * objects are `Map`s in insertion order, duplicate keys and nesting deeper than {@link MAX_DEPTH} are rejected.
 */
import { PQCTransportError } from '../errors.js';

/** Deepest nesting of arrays and objects accepted (64 nested containers parse, 65 do not). */
export const MAX_DEPTH = 64;

/** Python refuses to convert integers with more digits than this (`sys.get_int_max_str_digits()`). */
const MAX_INT_DIGITS = 4300;

/** A JSON number as its sender wrote it. */
export class JsonNumber {
  /** The number exactly as in the text, e.g. `"7.0"`, `"-0"`, `"1E+2"`. */
  readonly lexeme: string;
  /** True when the lexeme has no `.`, `e` or `E` (Python reads it as an `int`). */
  readonly isInteger: boolean;
  private canonical: string | undefined;

  /** Trusts `lexeme` to be a valid RFC 8259 number (the parser validated it). */
  constructor(lexeme: string) {
    this.lexeme = lexeme;
    let integer = true;
    for (let i = 0; i < lexeme.length; i++) {
      const c = lexeme.charCodeAt(i);
      if (c === 0x2e || c === 0x65 || c === 0x45) {
        integer = false;
        break;
      }
    }
    this.isInteger = integer;
  }

  /** Python's rendering: exact integer digits (`-0` → `0`), or `repr(float)`. */
  toCanonical(): string {
    let out = this.canonical;
    if (out === undefined) {
      if (this.isInteger) {
        out = this.lexeme === '-0' ? '0' : this.lexeme;
      } else {
        const x = Number(this.lexeme);
        if (!Number.isFinite(x)) {
          throw new PQCTransportError('malformed_json', `malformed JSON: number ${this.lexeme} overflows a double`);
        }
        out = floatRepr(x);
      }
      this.canonical = out;
    }
    return out;
  }

  /** `Number(lexeme)` (approximate for integers beyond 2^53). */
  toNumber(): number {
    return Number(this.lexeme);
  }
}

/** A JSON object: insertion order kept; a `Map`, so a `"__proto__"` key is an ordinary key. */
export type JsonObject = Map<string, JsonValue>;
/** A node of a lossless JSON tree. */
export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;

/**
 * Python's `repr(float)` of a finite double: shortest round-trip digits, fixed notation with at least one fractional
 * digit when the decimal exponent e satisfies -4 <= e < 16, else `d[.ddd]e±XX`.
 */
export function floatRepr(x: number): string {
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const a = x < 0 ? -x : x;
  const s = String(x);
  // JS writes fixed notation for 1e-7 <= |x| < 1e21 with the same shortest digits: only ".0" may be missing.
  if (a >= 1e-4 && a < 1e16) return s.indexOf('.') === -1 ? s + '.0' : s;
  // Scientific notation: recover the digits and the decimal exponent from JS's rendering.
  let i = x < 0 ? 1 : 0;
  let digits: string;
  let exp: number;
  const e = s.indexOf('e');
  if (e !== -1) {
    const mantissa = s.slice(i, e);
    digits = mantissa.length > 1 ? mantissa[0] + mantissa.slice(2) : mantissa;
    exp = Number(s.slice(e + 1));
  } else {
    const dot = s.indexOf('.');
    if (dot === -1) {
      // integer-valued, 1e16 <= |x| < 1e21
      digits = s.slice(i);
      exp = digits.length - 1;
    } else {
      // 0.000000ddd (|x| < 1e-4)
      i = dot + 1;
      while (s.charCodeAt(i) === 0x30) i++;
      digits = s.slice(i);
      exp = dot - i;
    }
  }
  let end = digits.length;
  while (end > 1 && digits.charCodeAt(end - 1) === 0x30) end--;
  let out = x < 0 ? '-' + digits[0] : digits[0]!;
  if (end > 1) out += '.' + digits.slice(1, end);
  const ae = exp < 0 ? -exp : exp;
  return out + (exp < 0 ? 'e-' : 'e+') + (ae < 10 ? '0' + ae : String(ae));
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function fail(message: string, offset: number): never {
  throw new PQCTransportError('malformed_json', `malformed JSON: ${message} at offset ${offset}`);
}

function describe(s: string, i: number): string {
  if (i >= s.length) return 'unexpected end of input';
  const c = s.charCodeAt(i);
  if (c < 0x20 || c > 0x7e) return `unexpected character U+${c.toString(16).padStart(4, '0').toUpperCase()}`;
  return `unexpected character '${s[i]}'`;
}

/**
 * A string that shares no memory with the parsed text. V8 keeps a slice as a view of its whole parent, so a 32-character
 * nonce in a replay cache, a DID in a session or an audit entry would keep its whole request body (up to the body
 * limit) alive for as long as it is kept. `(' ' + s).slice(1)` makes V8 copy the characters into a string of their own.
 */
function detach(s: string): string {
  return s.length < 13 ? s : (' ' + s).slice(1);
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x57;
  return -1;
}

/** Bounds a parse applies as it goes, so that a hostile body costs no more than the bound (never the whole body). */
export interface ParseLimits {
  /** JSON values in the document (objects, arrays, strings, numbers, literals); past it `body_too_large`. */
  maxValues?: number;
  /** Elements of a top-level array (a JSON-RPC batch); past it `invalid_envelope` (docs/PROTOCOL.md §9). */
  maxBatch?: number;
}

class Parser {
  private readonly s: string;
  private i = 0;
  private values = 0;
  private readonly maxValues: number;
  private readonly maxBatch: number;

  constructor(s: string, limits: ParseLimits) {
    this.s = s;
    this.maxValues = limits.maxValues ?? Number.POSITIVE_INFINITY;
    this.maxBatch = limits.maxBatch ?? Number.POSITIVE_INFINITY;
  }

  parseDocument(): JsonValue {
    const s = this.s;
    if (s.length === 0) fail('empty input', 0);
    if (s.charCodeAt(0) === 0xfeff) fail('byte-order mark', 0);
    this.skipWs();
    const value = this.parseValue(0);
    this.skipWs();
    if (this.i < s.length) fail(`trailing data (${describe(s, this.i)})`, this.i);
    return value;
  }

  private skipWs(): void {
    const s = this.s;
    let i = this.i;
    for (;;) {
      const c = s.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
    this.i = i;
  }

  private parseValue(depth: number): JsonValue {
    if (++this.values > this.maxValues) {
      throw new PQCTransportError('body_too_large', `more than ${this.maxValues} JSON values`);
    }
    const s = this.s;
    const i = this.i;
    const c = s.charCodeAt(i);
    switch (c) {
      case 0x22: // "
        return this.parseString();
      case 0x7b: // {
        return this.parseObject(depth + 1);
      case 0x5b: // [
        return this.parseArray(depth + 1);
      case 0x74: // t
        if (s.startsWith('true', i)) {
          this.i = i + 4;
          return true;
        }
        break;
      case 0x66: // f
        if (s.startsWith('false', i)) {
          this.i = i + 5;
          return false;
        }
        break;
      case 0x6e: // n
        if (s.startsWith('null', i)) {
          this.i = i + 4;
          return null;
        }
        break;
      default:
        if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.parseNumber();
    }
    return fail(describe(s, i), i);
  }

  private parseObject(depth: number): JsonObject {
    if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH} levels`, this.i);
    const s = this.s;
    const map: JsonObject = new Map();
    this.i++;
    this.skipWs();
    if (s.charCodeAt(this.i) === 0x7d) {
      this.i++;
      return map;
    }
    for (;;) {
      const at = this.i;
      if (s.charCodeAt(at) !== 0x22) fail(`expected a string key (${describe(s, at)})`, at);
      const key = this.parseString();
      this.skipWs();
      if (s.charCodeAt(this.i) !== 0x3a) fail(`expected ':' (${describe(s, this.i)})`, this.i);
      this.i++;
      this.skipWs();
      const size = map.size;
      map.set(key, this.parseValue(depth));
      if (map.size === size) fail(`duplicate key ${JSON.stringify(key.length > 64 ? key.slice(0, 64) + '...' : key)}`, at);
      this.skipWs();
      const c = s.charCodeAt(this.i);
      if (c === 0x2c) {
        this.i++;
        this.skipWs();
      } else if (c === 0x7d) {
        this.i++;
        return map;
      } else {
        fail(`expected ',' or '}' (${describe(s, this.i)})`, this.i);
      }
    }
  }

  private parseArray(depth: number): JsonValue[] {
    if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH} levels`, this.i);
    const s = this.s;
    const arr: JsonValue[] = [];
    this.i++;
    this.skipWs();
    if (s.charCodeAt(this.i) === 0x5d) {
      this.i++;
      return arr;
    }
    for (;;) {
      if (depth === 1 && arr.length >= this.maxBatch) {
        throw new PQCTransportError('invalid_envelope', `a batch of more than ${this.maxBatch} messages`);
      }
      arr.push(this.parseValue(depth));
      this.skipWs();
      const c = s.charCodeAt(this.i);
      if (c === 0x2c) {
        this.i++;
        this.skipWs();
      } else if (c === 0x5d) {
        this.i++;
        return arr;
      } else {
        fail(`expected ',' or ']' (${describe(s, this.i)})`, this.i);
      }
    }
  }

  /** At an opening quote; returns the unescaped string. */
  private parseString(): string {
    const s = this.s;
    const n = s.length;
    let i = this.i + 1;
    let start = i;
    let out = '';
    for (;;) {
      if (i >= n) fail('unterminated string', this.i);
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        this.i = i + 1;
        return detach(start === i ? out : out + s.slice(start, i));
      }
      if (c === 0x5c) {
        if (i > start) out += s.slice(start, i);
        const e = s.charCodeAt(i + 1);
        switch (e) {
          case 0x22:
            out += '"';
            break;
          case 0x5c:
            out += '\\';
            break;
          case 0x2f:
            out += '/';
            break;
          case 0x62:
            out += '\b';
            break;
          case 0x66:
            out += '\f';
            break;
          case 0x6e:
            out += '\n';
            break;
          case 0x72:
            out += '\r';
            break;
          case 0x74:
            out += '\t';
            break;
          case 0x75: {
            const h0 = hexValue(s.charCodeAt(i + 2));
            const h1 = hexValue(s.charCodeAt(i + 3));
            const h2 = hexValue(s.charCodeAt(i + 4));
            const h3 = hexValue(s.charCodeAt(i + 5));
            if ((h0 | h1 | h2 | h3) < 0) fail('invalid \\u escape', i);
            out += String.fromCharCode((h0 << 12) | (h1 << 8) | (h2 << 4) | h3);
            i += 4;
            break;
          }
          default:
            fail(i + 1 >= n ? 'unterminated string' : 'invalid escape', i);
        }
        i += 2;
        start = i;
        continue;
      }
      if (c < 0x20) fail('unescaped control character in string', i);
      i++;
    }
  }

  private parseNumber(): JsonNumber {
    const s = this.s;
    const start = this.i;
    let i = start;
    let c = s.charCodeAt(i);
    if (c === 0x2d) c = s.charCodeAt(++i);
    const intStart = i;
    if (c === 0x30) {
      c = s.charCodeAt(++i);
      if (c >= 0x30 && c <= 0x39) fail('leading zero in number', start);
    } else if (c >= 0x31 && c <= 0x39) {
      do c = s.charCodeAt(++i);
      while (c >= 0x30 && c <= 0x39);
    } else {
      fail(`expected a digit (${describe(s, i)})`, i);
    }
    let integer = true;
    if (c === 0x2e) {
      integer = false;
      c = s.charCodeAt(++i);
      if (!(c >= 0x30 && c <= 0x39)) fail(`expected a digit after '.' (${describe(s, i)})`, i);
      do c = s.charCodeAt(++i);
      while (c >= 0x30 && c <= 0x39);
    }
    if (c === 0x65 || c === 0x45) {
      integer = false;
      c = s.charCodeAt(++i);
      if (c === 0x2b || c === 0x2d) c = s.charCodeAt(++i);
      if (!(c >= 0x30 && c <= 0x39)) fail(`expected a digit in exponent (${describe(s, i)})`, i);
      do c = s.charCodeAt(++i);
      while (c >= 0x30 && c <= 0x39);
    }
    this.i = i;
    const lexeme = s.slice(start, i);
    if (integer) {
      if (i - intStart > MAX_INT_DIGITS) fail(`integer with more than ${MAX_INT_DIGITS} digits`, start);
    } else if (!Number.isFinite(Number(lexeme))) {
      fail(`number ${lexeme.length > 40 ? lexeme.slice(0, 40) + '...' : lexeme} overflows a double`, start);
    }
    return new JsonNumber(lexeme);
  }
}

/**
 * Strict RFC 8259 parse keeping number lexemes (docs/PROTOCOL.md §2). A `Uint8Array` must be UTF-8 without a byte-order
 * mark. Throws `PQCTransportError('malformed_json')` saying what is wrong and at which offset (UTF-16 units of the
 * decoded text).
 */
export function parseLossless(input: string | Uint8Array, limits: ParseLimits = {}): JsonValue {
  let text: string;
  if (typeof input === 'string') {
    text = input;
  } else {
    try {
      text = utf8.decode(input);
    } catch {
      throw new PQCTransportError('malformed_json', 'malformed JSON: invalid UTF-8');
    }
  }
  return new Parser(text, limits).parseDocument();
}

/**
 * Plain JS value of a lossless tree: numbers via `Number(lexeme)`, objects as plain objects where a `"__proto__"`
 * key is an own data property.
 */
export function toPlain(value: JsonValue): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof JsonNumber) return value.toNumber();
  if (Array.isArray(value)) return value.map(toPlain);
  const out: Record<string, unknown> = {};
  for (const [key, v] of value) {
    if (key === '__proto__') {
      Object.defineProperty(out, key, { value: toPlain(v), writable: true, enumerable: true, configurable: true });
    } else {
      out[key] = toPlain(v);
    }
  }
  return out;
}
