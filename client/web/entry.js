// Entry and pairing: the Join/Create forms, the key derivation progress, the new-channel step, the
// second person's pairing step, and the creator's pending pairing code.

import {
  channelHashes,
  accessHashFor,
  otpHash,
  mintPairingCode,
  normaliseOtp,
  normalisePhone,
  encryptText,
  decryptText,
} from './crypto.js';
import { deriveKeyInWorker } from './kdf.js';
import { generateNumber, isInternationalNumber } from './steg.js';
import { REASONS } from './reasons.js';
import { $, s, screen, show, say, setMsg, focusField, here } from './ui.js';
import { connect, wipeSecrets } from './session.js';

const PAIRING_SLOT = 'stg:pairing';

export function setMode(mode) {
  s.mode = mode;
  const join = mode === 'join';
  $('tab-join').setAttribute('aria-selected', String(join));
  $('tab-create').setAttribute('aria-selected', String(!join));
  $('tab-join').tabIndex = join ? 0 : -1;
  $('tab-create').tabIndex = join ? -1 : 0;
  $('form-join').hidden = !join;
  $('form-create').hidden = join;
  if (!join && !$('create-num').value) regenerate();
}

export function regenerate() {
  $('create-num').value = generateNumber($('create-country').value).display;
}

// Every field that ever held a number, a PIN, a code or a draft; a fresh generated number.
export function clearFields() {
  for (const id of ['join-num', 'join-pin', 'create-pin', 'new-pin', 'pair-code', 'pair-pin', 'unlock-pin', 'compose-text', 'extend-token']) {
    $(id).value = '';
  }
  $('new-terms').checked = false;
  regenerate();
}

export function showEntry(message, offerCreate) {
  wipeSecrets();
  setMsg('entry-msg', message);
  $('entry-offer').hidden = !offerCreate;
  show('entry');
}

export async function submitEntry(event) {
  event.preventDefault();
  const create = s.mode === 'create';
  const numberField = create ? $('create-num') : $('join-num');
  const pinField = create ? $('create-pin') : $('join-pin');
  const phone = numberField.value.trim();
  const pin = pinField.value;
  $('entry-offer').hidden = true;
  if (!isInternationalNumber(phone)) {
    setMsg('entry-msg', 'Enter the number in international form, starting with + and the country code.');
    focusField(numberField.id);
    return;
  }
  if ([...pin].length < 4) {
    setMsg('entry-msg', 'Enter a PIN of at least 4 characters.');
    focusField(pinField.id);
    return;
  }
  setMsg('entry-msg', '');
  await openChannel(phone, pin, create, pinField);
}

// Honest progress: PBKDF2 is one Web Crypto call with no progress of its own, so the bar counts
// finished steps and the running step pulses.
let withLookup = true;

function progress(step) {
  $('derive-progress').value = step;
  $('derive-pct').textContent = `${Math.round((step / 3) * 100)}%`;
  for (const li of $('derive-steps').children) {
    const n = Number(li.dataset.step);
    li.classList.toggle('done', n <= step);
    li.classList.toggle('active', n === step + 1 || (!withLookup && step === 1 && n === 3));
    if (n === 2) li.hidden = !withLookup;
  }
}

async function deriveHashes(phone, pin) {
  const h = await channelHashes(phone, pin);
  s.phone = phone;
  s.roomHash = h.roomHash;
  s.accessHash = h.accessHash;
  s.senderHash = h.senderHash;
}

// The key needs only the number, so the worker starts at once, in parallel with the look-up.
function startKey() {
  const promise = deriveKeyInWorker(s.phone, s.roomHash);
  s.keyPromise = promise;
  promise.then(
    (key) => {
      if (s.keyPromise === promise) s.key = key;
    },
    () => {},
  );
}

async function awaitKey() {
  if (s.key) return s.key;
  if (screen() !== 'deriving') {
    progress(2);
    show('deriving');
  }
  const key = await s.keyPromise;
  progress(3);
  return key;
}

export async function roomExists(roomHash) {
  const res = await fetch(here(`api/room/${roomHash}/exists`), { cache: 'no-store', credentials: 'omit' });
  if (!res.ok) throw new Error(res.status === 429 ? 'rate' : res.status === 503 ? 'unavailable' : 'lookup');
  const { exists } = await res.json();
  return !!exists;
}

async function openChannel(phone, pin, create, pinField) {
  withLookup = true;
  progress(0);
  show('deriving');
  try {
    await deriveHashes(phone, pin);
    progress(1);
    if (create && s.closed.has(s.roomHash)) {
      // A number this page saw closed is never offered again; the PIN stays typed.
      regenerate();
      showEntry('That number belonged to a closed channel; here is a fresh one.');
      return;
    }
    startKey();
    const exists = await roomExists(s.roomHash);
    progress(2);
    if (create && exists) {
      regenerate();
      showEntry('That number was just taken; here is a fresh one. Your PIN is still filled in.');
      focusField('form-create-go');
      return;
    }
    if (!create && !exists && s.closed.has(s.roomHash)) {
      showEntry('That channel was closed, so its number opens nothing now. To talk again, create a new channel: it gets a new number.');
      return;
    }
    if (!create && !exists) {
      // Keep the number, the PIN (a mistyped number is no reason to retype it) and the key: the
      // "Create" offer goes straight to the new-channel step.
      setMsg('entry-msg', 'No channel uses that number. Check the number, or create a new channel with it.');
      $('entry-offer').hidden = false;
      show('entry');
      return;
    }
    // From here the PIN lives only as its hashes.
    pinField.value = '';
    if (create) {
      showNewChannel();
      return;
    }
    await awaitKey();
    await connect({}, 'join');
  } catch (err) {
    const why = err && err.message;
    showEntry(why === 'rate' ? REASONS.rate_limited : why === 'unavailable' ? REASONS.room_unavailable : REASONS.unreachable);
  }
}

// ---- new channel ---------------------------------------------------------------------------

export function vcard() {
  const digits = `+${normalisePhone(s.phone)}`;
  return `BEGIN:VCARD\r\nVERSION:3.0\r\nFN:${digits}\r\nTEL;TYPE=CELL:${digits}\r\nEND:VCARD\r\n`;
}

export function downloadVcard() {
  const url = URL.createObjectURL(new Blob([vcard()], { type: 'text/vcard' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = 'contact.vcf';
  document.body.append(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export async function copyText(text, doneMsg) {
  try {
    await navigator.clipboard.writeText(text);
    say(doneMsg);
  } catch (_) {
    say('Copy is not available here; select the text instead.');
  }
}

export function showNewChannel() {
  $('new-num').textContent = s.phone;
  $('new-pin').value = '';
  $('new-terms').checked = false;
  setMsg('new-msg', '');
  show('new_channel');
}

export async function confirmNewChannel(event) {
  event.preventDefault();
  // The terms box first: an unrelated mistake must not cost the PIN already typed.
  if (!$('new-terms').checked) {
    setMsg('new-msg', 'Tick the box to confirm you understand how the channel works.');
    focusField('new-terms');
    return;
  }
  const pin = $('new-pin').value;
  if ((await accessHashFor(s.phone, pin)) !== s.accessHash) {
    $('new-pin').value = '';
    setMsg('new-msg', 'That PIN does not match the one you chose a moment ago.');
    focusField('new-pin');
    return;
  }
  $('new-pin').value = '';
  try {
    await awaitKey();
  } catch (_) {
    showEntry(REASONS.key_failed);
    return;
  }
  s.pairingCode = mintPairingCode();
  await storePairingCode();
  await connect({ otp_hash: await otpHash(s.pairingCode) }, 'create');
}

// ---- pairing (the second person) -----------------------------------------------------------

export function showPair(message) {
  setMsg('pair-msg', message || '');
  show('pair');
}

export async function submitPair(event) {
  event.preventDefault();
  const code = normaliseOtp($('pair-code').value);
  const pin = $('pair-pin').value;
  if (code.length !== 8) {
    setMsg('pair-msg', 'The code has 8 letters and digits, like 7K3M-9QXZ.');
    focusField('pair-code');
    return;
  }
  if ((await accessHashFor(s.phone, pin)) !== s.accessHash) {
    $('pair-pin').value = '';
    setMsg('pair-msg', 'That PIN is not the one you typed on the first screen. Type the same PIN again.');
    focusField('pair-pin');
    return;
  }
  $('pair-pin').value = '';
  setMsg('pair-msg', '');
  await connect({ otp_hash: await otpHash(code) }, 'pair');
}

// ---- the creator's pending code --------------------------------------------------------------

// The code may outlive a reload in sessionStorage until the other party pairs; it is stored
// sealed with the channel key, so it neither names the channel nor opens without it.
export async function storePairingCode() {
  try {
    const sealed = await encryptText(s.key, s.pairingCode);
    window.sessionStorage.setItem(PAIRING_SLOT, JSON.stringify(sealed));
  } catch (_) {
    // Without storage the code simply lives in memory for this page.
  }
}

export async function loadPairingCode() {
  try {
    const raw = window.sessionStorage.getItem(PAIRING_SLOT);
    if (!raw) return null;
    const { ciphertext, iv } = JSON.parse(raw);
    return await decryptText(s.key, ciphertext, iv);
  } catch (_) {
    return null;
  }
}

export function forgetPairingCode() {
  s.pairingCode = null;
  try {
    window.sessionStorage.removeItem(PAIRING_SLOT);
  } catch (_) {
    // Nothing stored.
  }
}

// ---- unlock ----------------------------------------------------------------------------------

export async function unlockWith(pin) {
  withLookup = false;
  progress(0);
  show('deriving');
  try {
    await deriveHashes(s.phone, pin);
    progress(1);
    startKey();
    await awaitKey();
  } catch (_) {
    showEntry(REASONS.key_failed);
    return;
  }
  await connect({}, 'unlock');
}
