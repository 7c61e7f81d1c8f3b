import { sha3_256 } from '@noble/hashes/sha3.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { readVector, type CanonicalVector } from '@pqc-mcp/test-kit';
import { PQCTransportError } from '../src/errors.js';
import {
  JsonNumber,
  MAX_DEPTH,
  canonicalJson,
  canonicalText,
  parseLossless,
  serializeJson,
  toPlain,
  type JsonObject,
} from '../src/json/index.js';

const { vectors } = readVector<{ vectors: Required<CanonicalVector>[] }>('canonical.json');
const utf8 = new TextEncoder();

function ascii(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) throw new Error(`non-ASCII unit at ${i}`);
    out[i] = c;
  }
  return out;
}

function malformed(fn: () => unknown): PQCTransportError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PQCTransportError);
    expect((err as PQCTransportError).reason).toBe('malformed_json');
    return err as PQCTransportError;
  }
  throw new Error('expected malformed_json');
}

const nest = (n: number, open: string, close: string, inner = ''): string => open.repeat(n) + inner + close.repeat(n);

describe('canonical vectors (docs/vectors/canonical.json)', () => {
  it('has vectors', () => {
    expect(vectors.length).toBeGreaterThan(50);
  });

  it.each(vectors.map((v, i) => [i, v] as const))('vector %i: text, bytes, hash, idempotence', (_i, v) => {
    const out = canonicalText(v.input);
    expect(out).toBe(v.canonical);
    expect(bytesToHex(sha3_256(ascii(out)))).toBe(v.sha3_256);
    // Lone surrogates cannot be written as UTF-8: only check the bytes path for well-formed inputs.
    if (!/\p{Surrogate}/u.test(v.input)) expect(canonicalText(utf8.encode(v.input))).toBe(v.canonical);
    expect(canonicalText(out)).toBe(out);
    expect(canonicalText(serializeJson(parseLossless(v.input)))).toBe(v.canonical);
  });
});

describe('floats as Python repr(float)', () => {
  const table: [string, string][] = [
    ['0.1', '0.1'],
    ['1e16', '1e+16'],
    ['1e15', '1000000000000000.0'],
    ['1.5e-7', '1.5e-07'],
    ['0.0001', '0.0001'],
    ['0.00001', '1e-05'],
    ['5e-324', '5e-324'],
    ['1.7976931348623157e308', '1.7976931348623157e+308'],
    ['123456789.0', '123456789.0'],
    ['-0.0', '-0.0'],
    ['100.0', '100.0'],
    ['1E2', '100.0'],
    ['1e+2', '100.0'],
    ['7.0', '7.0'],
    ['7.50', '7.5'],
    ['1e21', '1e+21'],
    ['1e22', '1e+22'],
    ['12345678901234567.0', '1.2345678901234568e+16'],
    ['9999999999999998.0', '9999999999999998.0'],
    ['0.000099999999999999999999', '0.0001'],
    ['9.999999999999999e-05', '9.999999999999999e-05'],
    ['1e-7', '1e-07'],
    ['-2.5e-5', '-2.5e-05'],
    ['1.25e100', '1.25e+100'],
    ['2.2250738585072014e-308', '2.2250738585072014e-308'],
    ['1e-400', '0.0'],
    ['-1e-400', '-0.0'],
    ['0e0', '0.0'],
    ['-0e5', '-0.0'],
    ['123.456e3', '123456.0'],
    ['9007199254740993.0', '9007199254740992.0'],
  ];
  it.each(table)('%s -> %s', (lexeme, expected) => {
    expect(canonicalText(lexeme)).toBe(expected);
    const n = new JsonNumber(lexeme);
    expect(n.isInteger).toBe(false);
    expect(n.toCanonical()).toBe(expected);
    expect(n.toCanonical()).toBe(expected); // cached
  });
});

describe('integers', () => {
  it.each([
    ['0', '0'],
    ['-0', '0'],
    ['7', '7'],
    ['-12', '-12'],
    ['9007199254740993', '9007199254740993'],
    ['123456789012345678901234567890', '123456789012345678901234567890'],
  ])('%s -> %s', (lexeme, expected) => {
    expect(canonicalText(lexeme)).toBe(expected);
    expect(new JsonNumber(lexeme).isInteger).toBe(true);
  });

  it('accepts 4300 digits and rejects 4301', () => {
    const big = '9'.repeat(4300);
    expect(canonicalText(big)).toBe(big);
    expect(canonicalText('-' + big)).toBe('-' + big);
    malformed(() => canonicalText('9'.repeat(4301)));
    malformed(() => canonicalText('[-' + '1'.repeat(4301) + ']'));
  });

  it('toNumber', () => {
    expect(new JsonNumber('7.0').toNumber()).toBe(7);
    expect(new JsonNumber('1E2').toNumber()).toBe(100);
    expect(Object.is(new JsonNumber('-0').toNumber(), -0)).toBe(true);
  });
});

describe('strings', () => {
  it.each([
    ['"plain ascii / ok"', '"plain ascii / ok"'],
    ['"\\u00E9\\u00e9"', '"\\u00e9\\u00e9"'],
    ['"\\/"', '"/"'],
    ['"\u007f"', '"\\u007f"'],
    ['"\u0080\u00ff\u2028"', '"\\u0080\\u00ff\\u2028"'],
    ['"😀"', '"\\ud83d\\ude00"'],
    ['"\\ud800"', '"\\ud800"'],
    ['"\\udc00x"', '"\\udc00x"'],
    ['"\\u0000\\u001F"', '"\\u0000\\u001f"'],
    ['"\\b\\f\\n\\r\\t"', '"\\b\\f\\n\\r\\t"'],
    ['"\\"\\\\"', '"\\"\\\\"'],
    ['"ab\\"cd\\\\ef"', '"ab\\"cd\\\\ef"'],
  ])('%s -> %s', (input, expected) => {
    expect(canonicalText(input)).toBe(expected);
  });

  it('accepts a raw lone surrogate in string input', () => {
    expect(canonicalText('"a\ud800b"')).toBe('"a\\ud800b"');
  });
});

describe('key order is by code point', () => {
  it('sorts U+FFFF before U+1F600 and a lone surrogate before U+E000', () => {
    const text = JSON.stringify({ '\u{1F600}': 1, '\uffff': 2, '\ue000': 3, '\ud800': 4, z: 5, '': 6, a: 7 });
    expect(canonicalText(text)).toBe(
      '{"":6,"a":7,"z":5,"\\ud800":4,"\\ue000":3,"\\uffff":2,"\\ud83d\\ude00":1}',
    );
  });

  it('compares a pair with a lone high surrogate sharing its first unit', () => {
    // Python: '\ud83d' + 'A' (code points D83D, 41) < '\U0001F600' (1F600); '\ud83d' < '\ud83dA'
    const text = '{"\\ud83d\\ude00":1,"\\ud83dA":2,"\\ud83d":3,"\\ud83d\\ude01":4}';
    expect(canonicalText(text)).toBe('{"\\ud83d":3,"\\ud83dA":2,"\\ud83d\\ude00":1,"\\ud83d\\ude01":4}');
  });

  it('compares past a lone high surrogate shared by both keys', () => {
    // Python: '\ud83d5' (D83D, 35) < '\ud83d\uffff3' (D83D, FFFF, 33)
    expect(canonicalText('{"\\ud83d\\uffff3":1,"\\ud83d5":2}')).toBe('{"\\ud83d5":2,"\\ud83d\\uffff3":1}');
  });

  it('sorts plain objects and Maps the same way', () => {
    const obj = { b: 1, a: 2, '\u{1F600}': 3, '\uffff': 4 };
    const map = new Map<string, unknown>(Object.entries(obj));
    expect(canonicalJson(obj)).toBe('{"a":2,"b":1,"\\uffff":4,"\\ud83d\\ude00":3}');
    expect(canonicalJson(map)).toBe(canonicalJson(obj));
  });
});

describe('rejections (malformed_json)', () => {
  const cases: [string, string | Uint8Array][] = [
    ['empty input', ''],
    ['only whitespace', ' \n'],
    ['NaN', 'NaN'],
    ['Infinity', 'Infinity'],
    ['-Infinity', '-Infinity'],
    ['NaN in array', '[NaN]'],
    ['overflowing float', '1e400'],
    ['overflowing negative float', '[-1e400]'],
    ['overflowing long mantissa', '1' + '0'.repeat(400) + '.0'],
    ['leading zeros', '01'],
    ['leading zeros negative', '-01'],
    ['leading zero float', '00.5'],
    ['plus sign', '+1'],
    ['bare fraction', '.5'],
    ['trailing dot', '1.'],
    ['dot exponent', '1.e5'],
    ['empty exponent', '1e'],
    ['signed empty exponent', '1e+'],
    ['lone minus', '-'],
    ['hex number', '0x10'],
    ['trailing comma array', '[1,2,]'],
    ['trailing comma object', '{"a":1,}'],
    ['leading comma', '[,1]'],
    ['double comma', '[1,,2]'],
    ['missing comma', '[1 2]'],
    ['line comment', '{"a":1}//x'],
    ['block comment', '/*x*/{"a":1}'],
    ['comment inside', '[1,/*x*/2]'],
    ['single quotes', "{'a':1}"],
    ['single quoted value', "['a']"],
    ['unquoted key', '{a:1}'],
    ['raw newline in string', '"a\nb"'],
    ['raw tab in string', '"a\tb"'],
    ['raw NUL in string', '"a\u0000b"'],
    ['invalid escape', '"\\x41"'],
    ['invalid escape \\a', '"\\a"'],
    ['short \\u escape', '"\\u12"'],
    ['non-hex \\u escape', '"\\u12g4"'],
    ['unterminated string', '"abc'],
    ['unterminated escape', '"abc\\'],
    ['duplicate keys', '{"a":1,"a":2}'],
    ['duplicate keys after unescaping', '{"a":1,"\\u0061":2}'],
    ['duplicate keys nested', '{"x":{"k":1,"b":2,"k":3}}'],
    ['trailing garbage', '{"a":1}x'],
    ['two documents', '{} {}'],
    ['trailing bracket', '[1]]'],
    ['unclosed array', '[1,2'],
    ['unclosed object', '{"a":1'],
    ['missing colon', '{"a" 1}'],
    ['missing value', '{"a":}'],
    ['BOM in text', '\ufeff{}'],
    ['BOM bytes', Uint8Array.of(0xef, 0xbb, 0xbf, 0x7b, 0x7d)],
    ['invalid UTF-8 byte', Uint8Array.of(0x22, 0xff, 0x22)],
    ['truncated UTF-8', Uint8Array.of(0x22, 0xc3, 0x22)],
    ['overlong UTF-8', Uint8Array.of(0x22, 0xc0, 0xaf, 0x22)],
    ['UTF-8 encoded surrogate', Uint8Array.of(0x22, 0xed, 0xa0, 0x80, 0x22)],
    ['vertical tab whitespace', '\u000b1'],
    ['form feed whitespace', '\f1'],
    ['non-breaking space', '\u00a01'],
    ['True', 'True'],
    ['truthy prefix', 'tru'],
    ['undefined', 'undefined'],
    ['65 nested arrays', nest(MAX_DEPTH + 1, '[', ']')],
    ['65 nested objects', nest(MAX_DEPTH + 1, '{"a":', '}', '1')],
    ['65 mixed', nest(32, '[', ']', nest(33, '{"a":', '}', 'null'))],
  ];
  it.each(cases)('%s', (_name, input) => {
    const err = malformed(() => parseLossless(input));
    expect(err.message).toMatch(/malformed JSON/);
    malformed(() => canonicalText(input));
  });

  it('says where', () => {
    expect(malformed(() => parseLossless('{"a":1,"a":2}')).message).toMatch(/duplicate key "a" at offset 7/);
    expect(malformed(() => parseLossless('[1,2,]')).message).toMatch(/offset 5/);
    expect(malformed(() => parseLossless('01')).message).toMatch(/leading zero/);
  });

  it('accepts 64 levels of nesting', () => {
    expect(canonicalText(nest(MAX_DEPTH, '[', ']'))).toBe(nest(MAX_DEPTH, '[', ']'));
    const objects = nest(MAX_DEPTH, '{"a":', '}', '1');
    expect(canonicalText(objects)).toBe(objects);
    const mixed = nest(32, '[', ']', nest(32, '{"a":', '}', '0'));
    expect(canonicalText(mixed)).toBe(mixed);
  });

  it('accepts the four whitespace characters anywhere between tokens', () => {
    expect(canonicalText(' \t\r\n{ \t\r\n"a" \t\r\n: \t\r\n[ 1 , 2 ] \t\r\n} \t\r\n')).toBe('{"a":[1,2]}');
  });
});

describe('canonicalJson on plain and mixed values', () => {
  it.each([
    [7, '7'],
    [7.5, '7.5'],
    [1e-7, '1e-07'],
    [1e21, '1e+21'],
    [1e20, '100000000000000000000'],
    [-0, '0'],
    [0.1, '0.1'],
    [2 ** 60, '1152921504606847000'],
    [-1.5e300, '-1.5e+300'],
    ['é', '"\\u00e9"'],
    [true, 'true'],
    [null, 'null'],
  ])('%p -> %s', (value, expected) => {
    expect(canonicalJson(value)).toBe(expected);
    // Same as canonicalizing what JSON.stringify writes.
    expect(canonicalText(JSON.stringify(value))).toBe(expected);
  });

  it('skips undefined, function and symbol members like JSON.stringify', () => {
    const value = { b: undefined, a: 1, f: () => 1, s: Symbol('x'), arr: [undefined, () => 1, Symbol('y'), 2] };
    expect(canonicalJson(value)).toBe('{"a":1,"arr":[null,null,null,2]}');
    expect(canonicalJson(new Map<string, unknown>([['x', undefined], ['y', 1]]))).toBe('{"y":1}');
  });

  it('honours toJSON and unboxes primitives', () => {
    const date = new Date(Date.UTC(2026, 10, 1));
    expect(canonicalJson({ d: date })).toBe('{"d":"2026-11-01T00:00:00.000Z"}');
    expect(canonicalJson({ x: { toJSON: (key: string) => `key:${key}` } })).toBe('{"x":"key:x"}');
    expect(canonicalJson([Object(1.5), Object('s'), Object(false)])).toBe('[1.5,"s",false]');
  });

  it('mixes Maps, JsonNumbers and plain values', () => {
    const tree = parseLossless('{"z":7.0,"a":{"n":1E2,"big":123456789012345678901234567890}}') as JsonObject;
    const value = { params: tree, id: 1, list: [new JsonNumber('-0'), new JsonNumber('1.50'), 0.5, tree.get('z')] };
    expect(canonicalJson(value)).toBe(
      '{"id":1,"list":[0,1.5,0.5,7.0],"params":{"a":{"big":123456789012345678901234567890,"n":100.0},"z":7.0}}',
    );
  });

  it('throws on non-finite numbers, bigint, cycles, non-string Map keys and non-JSON roots', () => {
    malformed(() => canonicalJson(NaN));
    malformed(() => canonicalJson({ a: Infinity }));
    malformed(() => canonicalJson([-Infinity]));
    malformed(() => canonicalJson({ a: 1n }));
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    malformed(() => canonicalJson(cyclic));
    const arr: unknown[] = [];
    arr.push([arr]);
    malformed(() => canonicalJson(arr));
    malformed(() => canonicalJson(new Map([[1, 2]])));
    malformed(() => canonicalJson(undefined));
    malformed(() => serializeJson({ a: NaN }));
    malformed(() => serializeJson(cyclic));
  });

  it('accepts a shared (non-cyclic) sub-object', () => {
    const shared = { x: 1 };
    const deep: unknown = Array.from({ length: 100 }).reduce<unknown>((inner) => [inner, shared], shared);
    expect(() => canonicalJson(deep)).not.toThrow();
    expect(canonicalJson({ a: shared, b: shared })).toBe('{"a":{"x":1},"b":{"x":1}}');
  });
});

describe('plain values agree with their JSON.stringify text', () => {
  // Deterministic PRNG (mulberry32): random plain values, canonicalJson(v) must equal canonicalText(JSON.stringify(v)).
  let seed = 0x5eed;
  const rand = (): number => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const chars = ['a', 'Z', '0', ' ', '"', '\\', '/', '\n', '\u0001', '\u007f', 'é', '\u2028', '\uffff', '\ue000', '😀', '\ud800'];
  const str = (): string => Array.from({ length: Math.floor(rand() * 5) }, () => pick(chars)).join('');
  const num = (): number =>
    pick([
      () => Math.floor((rand() - 0.5) * 2 ** 53),
      () => (rand() - 0.5) * 10 ** Math.floor(rand() * 60 - 30),
      () => Math.round(rand() * 1e6) * 10 ** Math.floor(rand() * 40 - 10),
      () => pick([0, -0, 1e21, 1e-7, 5e-324, Number.MAX_VALUE, 2 ** 64]),
    ])();
  const value = (depth: number): unknown => {
    const r = rand();
    if (depth > 4 || r < 0.5) return pick([null, true, false, num(), str(), num()]);
    if (r < 0.7) return Array.from({ length: Math.floor(rand() * 4) }, () => value(depth + 1));
    const obj: Record<string, unknown> = {};
    for (let i = Math.floor(rand() * 6); i > 0; i--) obj[str() + i] = value(depth + 1);
    return obj;
  };
  it('for 2000 random values', () => {
    for (let i = 0; i < 2000; i++) {
      const v = value(0);
      const text = JSON.stringify(v);
      expect(canonicalJson(v)).toBe(canonicalText(text));
      expect(serializeJson(v)).toBe(text);
    }
  });
});

describe('serializeJson', () => {
  it('keeps lexemes and insertion order', () => {
    const text = '{"b":7.0,"a":[1E+2,-0,0.10,"é\\u2028😀"],"c":{"z":1,"y":2}}';
    const out = serializeJson(parseLossless(text));
    expect(out).toBe('{"b":7.0,"a":[1E+2,-0,0.10,"é\u2028😀"],"c":{"z":1,"y":2}}');
    expect(canonicalText(out)).toBe(canonicalText(text));
  });

  it('writes strings and plain values as JSON.stringify does', () => {
    const value = { s: 'a"b\\c\n\u0001\u007f\ud800é', n: 1e-7, i: 7, arr: [true, null, undefined], u: undefined };
    expect(serializeJson(value)).toBe(JSON.stringify(value));
    expect(serializeJson(new Map([['k', new JsonNumber('7.0')]]))).toBe('{"k":7.0}');
  });
});

describe('toPlain', () => {
  it('makes "__proto__" an own data property', () => {
    const plain = toPlain(parseLossless('{"__proto__":1,"a":[2.5,{"__proto__":{"x":true}}]}')) as Record<string, unknown>;
    expect(Object.prototype.hasOwnProperty.call(plain, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(plain)).toBe(Object.prototype);
    expect(Object.keys(plain)).toEqual(['__proto__', 'a']);
    expect(plain).toEqual(JSON.parse('{"__proto__":1,"a":[2.5,{"__proto__":{"x":true}}]}'));
    expect(canonicalJson(plain)).toBe('{"__proto__":1,"a":[2.5,{"__proto__":{"x":true}}]}');
  });

  it('keeps "__proto__" as an ordinary Map key', () => {
    const tree = parseLossless('{"__proto__":{"polluted":true}}') as JsonObject;
    expect(tree.get('__proto__')).toBeInstanceOf(Map);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('converts numbers and nested values', () => {
    expect(toPlain(parseLossless('[1,7.0,"s",null,false,{"k":[]}]'))).toEqual([1, 7, 's', null, false, { k: [] }]);
  });
});
