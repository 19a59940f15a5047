// sTELgano-std-1 cryptography (CRYPTO.md) on Web Crypto alone: normalisation, the three hashes,
// pairing codes, and AES-256-GCM with the Web Crypto layout (tag appended, no associated data).

export const ROOM_SALT = 'stelegano-room-v1-2026';
export const ACCESS_SALT = 'stelegano-access-v1-2026';
export const SENDER_SALT = 'stelegano-sender-v1-2026';
export const ENC_SALT = 'stelegano-enc-v1-2026';
export const PBKDF2_ITERATIONS = 600000;
export const OTP_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

// Only ASCII digits count; a regex class is used because \d would be ASCII-only anyway but
// reads as if it were not.
export function normalisePhone(raw) {
  return String(raw).replace(/[^0-9]/g, '');
}

// Uppercasing first means "ß" becomes "SS" exactly as in the reference client; letters outside
// the alphabet (I, L, O, U) are dropped, not mapped.
export function normaliseOtp(raw) {
  let out = '';
  for (const ch of String(raw).toUpperCase()) {
    if (OTP_ALPHABET.includes(ch)) out += ch;
  }
  return out;
}

export function formatOtp(code) {
  return code.length === 8 ? `${code.slice(0, 4)}-${code.slice(4)}` : code;
}

function hex(bytes) {
  let out = '';
  for (const b of new Uint8Array(bytes)) out += b.toString(16).padStart(2, '0');
  return out;
}

export async function sha256Hex(text) {
  return hex(await crypto.subtle.digest('SHA-256', utf8.encode(text)));
}

// room, access and sender hashes for a number as typed and a PIN exactly as typed.
export async function channelHashes(rawPhone, pin) {
  const n = normalisePhone(rawPhone);
  const roomHash = await sha256Hex(`${n}:${ROOM_SALT}`);
  const accessHash = await sha256Hex(`${n}:${pin}:${ACCESS_SALT}`);
  const senderHash = await sha256Hex(`${n}:${accessHash}:${roomHash}:${SENDER_SALT}`);
  return { roomHash, accessHash, senderHash };
}

export async function accessHashFor(rawPhone, pin) {
  return sha256Hex(`${normalisePhone(rawPhone)}:${pin}:${ACCESS_SALT}`);
}

export async function otpHash(code) {
  return sha256Hex(normaliseOtp(code));
}

// Eight random bytes, each reduced to 5 bits: 256 is a multiple of 32, so every symbol is
// equally likely.
export function mintPairingCode() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  let code = '';
  for (const b of bytes) code += OTP_ALPHABET[b & 31];
  return code;
}

// The channel key. Called inside the worker so the 600,000 rounds never block the page; the
// result is a non-extractable CryptoKey, which structured clone still carries to the page.
export async function deriveChannelKey(normalisedPhone, roomHash, extractable = false) {
  const base = await crypto.subtle.importKey('raw', utf8.encode(normalisedPhone), 'PBKDF2', false, [
    'deriveKey',
  ]);
  return crypto.subtle.deriveKey(
    { name: 'PBKDF2', hash: 'SHA-256', salt: utf8.encode(roomHash + ENC_SALT), iterations: PBKDF2_ITERATIONS },
    base,
    { name: 'AES-GCM', length: 256 },
    extractable,
    ['encrypt', 'decrypt'],
  );
}

export function toBase64(bytes) {
  let bin = '';
  for (const b of new Uint8Array(bytes)) bin += String.fromCharCode(b);
  return btoa(bin);
}

export function fromBase64(text) {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i += 1) out[i] = bin.charCodeAt(i);
  return out;
}

export function utf8Length(text) {
  return utf8.encode(text).length;
}

// A fresh random IV for every message; `fixedIv` exists only so the vectors can be checked.
export async function encryptText(key, text, fixedIv) {
  const iv = fixedIv || crypto.getRandomValues(new Uint8Array(12));
  const sealed = await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, utf8.encode(text));
  return { ciphertext: toBase64(sealed), iv: toBase64(iv) };
}

// Throws on a wrong key, tampered bytes, a bad IV or text that is not UTF-8: callers show nothing
// rather than part of a message.
export async function decryptText(key, ciphertextB64, ivB64) {
  const iv = fromBase64(ivB64);
  if (iv.length !== 12) throw new Error('bad iv');
  const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv }, key, fromBase64(ciphertextB64));
  return utf8Strict.decode(plain);
}
