// Formatting for people: money (kept as strings, never binary floats), dates, counts and
// the server's messages as sentences.

/** "1234.5" -> "1,234.50" (strings only: money never goes through binary floats). */
export function fmtAmount(s) {
  if (s === null || s === undefined || s === '') return '';
  const str = String(s);
  const neg = str.startsWith('-');
  const [int, frac = ''] = (neg ? str.slice(1) : str).split('.');
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${neg ? '-' : ''}${grouped}.${(frac + '00').slice(0, 2)}`;
}

export const money = (s) => (s === null || s === undefined || s === '' ? '' : `$${fmtAmount(s)}`);

/** Amount in cents from a server string ("25.5" -> 2550). */
export function cents(s) {
  if (!s) return 0;
  const [int, frac = ''] = String(s).split('.');
  return parseInt(int, 10) * 100 + parseInt((frac + '00').slice(0, 2), 10);
}

export const centsToString = (c) => `${Math.floor(c / 100)}.${String(c % 100).padStart(2, '0')}`;

/** "2026-03-15" -> "03/15/2026". */
export function fmtDate(iso) {
  if (!iso) return '';
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso);
  return m ? `${m[2]}/${m[3]}/${m[1]}` : iso;
}

export function fmtTime(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  return d.toLocaleDateString('en-US', { year: 'numeric', month: '2-digit', day: '2-digit' });
}

export function plural(n, one, many) {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

/** Server messages start lower-case; people read sentences. */
export function sentence(s) {
  const t = String(s || '').trim();
  if (!t) return '';
  const cap = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(cap) ? cap : `${cap}.`;
}
