/**
 * Lowercase hex kept as raw bytes: a public key or a nonce takes half the room in SQLite as a BLOB. Any other text is
 * kept as it is (TEXT), so no value is ever altered and two different strings never map to the same stored value.
 */
const LOWER_HEX = /^(?:[0-9a-f]{2})+$/;
const DIGITS = '0123456789abcdef';

/** The bytes of lowercase hex text, or the text itself when it is not lowercase hex of whole bytes. */
export function packHex(text: string): ArrayBuffer | string {
  if (!LOWER_HEX.test(text)) return text;
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (DIGITS.indexOf(text[2 * i]!) << 4) | DIGITS.indexOf(text[2 * i + 1]!);
  return bytes.buffer;
}

/** The text `packHex` was given. */
export function unpackHex(value: unknown): string {
  if (typeof value === 'string') return value;
  if (!(value instanceof ArrayBuffer)) throw new TypeError('a stored hex value is neither text nor bytes');
  let text = '';
  for (const byte of new Uint8Array(value)) text += DIGITS[byte >> 4]! + DIGITS[byte & 15]!;
  return text;
}
