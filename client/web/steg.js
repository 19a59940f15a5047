// The steg-number generator: a plausible mobile number in E.164 for a handful of countries, every
// free digit drawn with crypto.getRandomValues. The number is the channel's secret (it alone keys
// the encryption), so each pattern leaves at least eight uniformly random digits.

// `pattern`: fixed digits, `d` for any digit, `n` for 2-9, and `[..]` for one of a set.
// `groups`: how the national part is shown, e.g. [3, 3, 4].
export const COUNTRIES = [
  { iso: 'US', name: 'United States', cc: '1', pattern: 'nddndddddd', groups: [3, 3, 4] },
  { iso: 'GB', name: 'United Kingdom', cc: '44', pattern: '7[45789]dddddddd', groups: [4, 6] },
  { iso: 'DE', name: 'Germany', cc: '49', pattern: '1[567][0-9]dddddddd', groups: [3, 8] },
  { iso: 'FR', name: 'France', cc: '33', pattern: '[67]dddddddd', groups: [1, 2, 2, 2, 2] },
  { iso: 'KE', name: 'Kenya', cc: '254', pattern: '7dddddddd', groups: [3, 3, 3] },
  { iso: 'NG', name: 'Nigeria', cc: '234', pattern: '[789][01]dddddddd', groups: [3, 3, 4] },
  { iso: 'IN', name: 'India', cc: '91', pattern: '[6789]ddddddddd', groups: [5, 5] },
  { iso: 'BR', name: 'Brazil', cc: '55', pattern: '[1-9][1-9]9dddddddd', groups: [2, 5, 4] },
];

// Uniform in [0, n): bytes at or above the largest multiple of n are redrawn.
function randomBelow(n) {
  const limit = 256 - (256 % n);
  const buf = new Uint8Array(1);
  for (;;) {
    crypto.getRandomValues(buf);
    if (buf[0] < limit) return buf[0] % n;
  }
}

function expandSet(body) {
  const out = [];
  for (let i = 0; i < body.length; i += 1) {
    if (body[i + 1] === '-' && i + 2 < body.length) {
      for (let c = body.charCodeAt(i); c <= body.charCodeAt(i + 2); c += 1) out.push(String.fromCharCode(c));
      i += 2;
    } else {
      out.push(body[i]);
    }
  }
  return out;
}

function fill(pattern) {
  let out = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const ch = pattern[i];
    if (ch === 'd') out += String(randomBelow(10));
    else if (ch === 'n') out += String(2 + randomBelow(8));
    else if (ch === '[') {
      const end = pattern.indexOf(']', i);
      const choices = expandSet(pattern.slice(i + 1, end));
      out += choices[randomBelow(choices.length)];
      i = end;
    } else out += ch;
  }
  return out;
}

export function countryByIso(iso) {
  return COUNTRIES.find((c) => c.iso === iso) || COUNTRIES[0];
}

// A fresh number for `iso`: { e164: "+14155550123", display: "+1 415 555 0123" }.
export function generateNumber(iso) {
  const country = countryByIso(iso);
  const national = fill(country.pattern);
  const parts = [];
  let at = 0;
  for (const len of country.groups) {
    parts.push(national.slice(at, at + len));
    at += len;
  }
  if (at < national.length) parts.push(national.slice(at));
  return { e164: `+${country.cc}${national}`, display: `+${country.cc} ${parts.join(' ')}` };
}

// Plausible international number: a "+" (or "00") prefix, digits and the usual separators only,
// 8 to 15 digits in all, not starting with 0.
export function isInternationalNumber(raw) {
  const text = String(raw).trim();
  if (!/^(\+|00)[0-9 ()./-]+$/.test(text)) return false;
  const digits = text.replace(/^00/, '').replace(/[^0-9]/g, '');
  return digits.length >= 8 && digits.length <= 15 && digits[0] !== '0';
}
