// Checks of an edited field before it is saved, with the server's rules, so a mistake shows
// while typing instead of after a round trip.

// What the server accepts (crates/core/src/donation.rs parse_amount / parse_date).
const AMOUNT_RE = /^(?:USD)?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d{1,2})?$/;
const MONTHS = ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august',
  'september', 'october', 'november', 'december'];

function checkAmount(raw) {
  const s = raw.replace(/\s+/g, '');
  if (s === '') return null;
  if (!AMOUNT_RE.test(s)) return 'Enter an amount like 1,234.50';
  const digits = s.replace(/^(?:USD)?\$?/, '').replace(/,/g, '');
  if (Number(digits) <= 0) return 'The amount must be more than zero';
  return null;
}

function validDay(y, m, d) {
  const dt = new Date(Date.UTC(y, m - 1, d));
  return dt.getUTCFullYear() === y && dt.getUTCMonth() === m - 1 && dt.getUTCDate() === d;
}

function checkDate(raw) {
  const s = raw.trim().replace(/\.$/, '');
  if (s === '') return null;
  const bad = 'Enter a date like 03/15/2026';
  let m = /^(\d{1,2})\/(\d{1,2})\/(\d{2}|\d{4})$/.exec(s);
  if (m) {
    let y = parseInt(m[3], 10);
    if (m[3].length === 2) y += y <= 68 ? 2000 : 1900;
    return validDay(y, +m[1], +m[2]) ? null : bad;
  }
  m = /^(\d{4})-(\d{1,2})-(\d{1,2})$/.exec(s);
  if (m) return validDay(+m[1], +m[2], +m[3]) ? null : bad;
  m = /^(\d{1,2})-(\d{1,2})-(\d{4})$/.exec(s);
  if (m) return validDay(+m[3], +m[1], +m[2]) ? null : bad;
  m = /^([A-Za-z]{3,9})\.? (\d{1,2}),? (\d{4})$/.exec(s);
  if (m) {
    const name = m[1].toLowerCase();
    const month = MONTHS.findIndex((full) => full === name || full.slice(0, 3) === name);
    return month >= 0 && validDay(+m[3], month + 1, +m[2]) ? null : bad;
  }
  return bad;
}

export const DATE_FIELDS = new Set(['payment_date', 'check_date', 'postmark_date', 'deposit_date']);

export function checkField(field, value) {
  if (field === 'amount') return checkAmount(value);
  if (DATE_FIELDS.has(field)) return checkDate(value);
  return null;
}
