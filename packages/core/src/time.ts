/** Timestamps as docs/PROTOCOL.md §3 writes and reads them. */

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** Python `datetime.isoformat()` of a UTC instant: `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`. */
export function formatTimestamp(ms: number): string {
  const d = new Date(ms);
  return (
    `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}` +
    `T${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}` +
    `.${pad(d.getUTCMilliseconds(), 3)}000+00:00`
  );
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** Milliseconds since the epoch of an RFC 3339 date-time with offset, or `NaN` when it is not one. */
export function parseTimestamp(text: unknown): number {
  if (typeof text !== 'string' || text.length > 40) return Number.NaN;
  const m = RFC3339.exec(text);
  if (!m) return Number.NaN;
  const [, y, mo, d, h, mi, s, frac, z, sign, oh, om] = m;
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return Number.NaN;
  let ms = Date.UTC(Number(y), month - 1, day, hour, minute, second);
  if (new Date(ms).getUTCDate() !== day) return Number.NaN; // 31 February and friends
  if (frac) ms += Number(`0.${frac}`) * 1000;
  if (!z) {
    const offH = Number(oh);
    const offM = Number(om);
    if (offH > 23 || offM > 59) return Number.NaN;
    const offset = (offH * 60 + offM) * 60_000;
    ms -= sign === '+' ? offset : -offset;
  }
  return ms;
}

/** `now` option of many functions: a Date, epoch milliseconds, or the current time when absent. */
export type Clock = Date | number | (() => number);

/** Epoch milliseconds of a `Clock`. */
export function nowMs(clock?: Clock): number {
  if (clock === undefined) return Date.now();
  if (typeof clock === 'number') return clock;
  if (typeof clock === 'function') return clock();
  return clock.getTime();
}
