// The browser app: a small state machine over the screens of CLIENT-UX.md
// (entry → deriving → new_channel | pair → connecting → chat → locked → expired). Keys, hashes and
// plaintext live only in the `s` object below and in the DOM while shown; lock and leave drop them.

import {
  channelHashes,
  accessHashFor,
  otpHash,
  mintPairingCode,
  formatOtp,
  normaliseOtp,
  normalisePhone,
  encryptText,
  decryptText,
  utf8Length,
} from './crypto.js';
import { deriveKeyInWorker } from './kdf.js';
import { Channel } from './channel.js';
import { COUNTRIES, generateNumber, isInternationalNumber } from './steg.js';

const STORE_PREFIX = 'stg:';
const PAIRING_SLOT = `${STORE_PREFIX}pairing`;
const MAX_CHARS = 4000;
const MAX_CIPHERTEXT = 8192;
const TAG_BYTES = 16;
const HIDDEN_LOCK_MS = 60 * 1000;
const TYPING_EVERY_MS = 2500;
const TYPING_SHOWN_MS = 4000;

const REASONS = {
  invalid_room: 'The relay rejected this channel address.',
  invalid_sender: 'The relay rejected this device’s credentials. Check the number and PIN.',
  invalid_access: 'The relay rejected this device’s credentials. Check the number and PIN.',
  not_found: 'That message is no longer there.',
  locked: 'Too many wrong PINs were tried: this channel is locked. While it is locked nobody can open it, not even with the right PIN, and you will be told how many attempts were made.',
  unauthorized: 'Wrong PIN for this channel.',
  not_joined: 'Not connected to the channel yet. Try again.',
  not_your_turn: 'Wait for a reply before you write again.',
  message_too_large: 'That message is too long.',
  invalid_encoding: 'The message could not be encoded.',
  send_failed: 'The message could not be sent. Try again.',
  not_editable: 'Already read: it can no longer be edited.',
  not_deletable: 'Already read: it can no longer be deleted.',
  expire_failed: 'The channel could not be closed. Try again.',
  invalid_token: 'That code is not valid.',
  payment_pending: 'A payment is still pending.',
  monetization_disabled: 'This relay does not offer extensions.',
  otp_required: 'This channel needs a pairing code.',
  otp_invalid: 'Incorrect code.',
  invalid_topic: 'The relay did not understand a request.',
  internal_error: 'The relay had a problem. Try again.',
  rate_limited: 'Too many attempts from this network. Wait a minute and try again.',
};

const $ = (id) => document.getElementById(id);

// Everything secret the app holds. `phone` stays while locked so a PIN alone resumes.
const s = {
  mode: 'join',
  phone: null,
  roomHash: null,
  accessHash: null,
  senderHash: null,
  keyPromise: null,
  key: null,
  channel: null,
  pairingCode: null,
  awaiting: false,
  ttl: null,
  messages: [],
  warned: false,
  lastTypingSent: 0,
  idleSeconds: 300,
  reconnects: 0,
};
let screen = null;
let idleTimer = 0;
let hiddenTimer = 0;
let typingTimer = 0;
let ttlTimer = 0;

function reasonText(error) {
  if (!error) return 'Something went wrong. Try again.';
  let text = REASONS[error.reason] || 'Something went wrong. Try again.';
  if (error.reason === 'unauthorized' && Number.isInteger(error.attempts_remaining)) {
    text += ` ${error.attempts_remaining} ${error.attempts_remaining === 1 ? 'attempt' : 'attempts'} left before it locks.`;
  }
  if (error.reason === 'locked' && Number.isInteger(error.retry_after)) {
    text += ` Try again in ${humanDuration(error.retry_after * 1000)}.`;
  }
  return text;
}

function humanDuration(ms) {
  const minutes = Math.max(1, Math.ceil(ms / 60000));
  if (minutes < 60) return `${minutes} ${minutes === 1 ? 'minute' : 'minutes'}`;
  const hours = Math.ceil(minutes / 60);
  return `${hours} ${hours === 1 ? 'hour' : 'hours'}`;
}

// ---- screens -------------------------------------------------------------------------------

function show(name) {
  screen = name;
  for (const section of document.querySelectorAll('[data-screen]')) {
    section.hidden = section.dataset.screen !== name;
  }
  document.body.dataset.state = name;
  const heading = document.querySelector(`[data-screen="${name}"] h1`);
  if (heading) heading.focus({ preventScroll: true });
}

function say(text) {
  const live = $('announce');
  live.textContent = '';
  window.setTimeout(() => {
    live.textContent = text;
  }, 50);
}

function setMsg(id, text) {
  const el = $(id);
  el.textContent = text || '';
  el.hidden = !text;
}

function focusField(id) {
  window.setTimeout(() => $(id).focus(), 0);
}

// ---- entry ---------------------------------------------------------------------------------

function setMode(mode) {
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

function regenerate() {
  $('create-num').value = generateNumber($('create-country').value).display;
}

function showEntry(message, offerCreate) {
  wipeSecrets();
  setMsg('entry-msg', message);
  $('entry-offer').hidden = !offerCreate;
  show('entry');
}

async function submitEntry(event) {
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
  pinField.value = '';
  await openChannel(phone, pin, create);
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
  const phone = s.phone;
  const room = s.roomHash;
  const promise = deriveKeyInWorker(phone, room);
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
  if (screen !== 'deriving') {
    progress(2);
    show('deriving');
  }
  const key = await s.keyPromise;
  progress(3);
  return key;
}

async function openChannel(phone, pin, create) {
  withLookup = true;
  progress(0);
  show('deriving');
  try {
    await deriveHashes(phone, pin);
    progress(1);
    startKey();
    const res = await fetch(`/api/room/${s.roomHash}/exists`, { cache: 'no-store', credentials: 'omit' });
    if (!res.ok) throw new Error(res.status === 429 ? 'rate' : 'lookup');
    const { exists } = await res.json();
    progress(2);
    if (create && exists) {
      regenerate();
      showEntry('That number was just taken; here is a fresh one.');
      return;
    }
    if (create) {
      showNewChannel();
      return;
    }
    if (!exists) {
      // Keep the number and key: the "Create" offer goes straight to the new-channel step.
      setMsg('entry-msg', 'No channel for that number yet.');
      $('entry-offer').hidden = false;
      show('entry');
      return;
    }
    await awaitKey();
    await connect({}, 'join');
  } catch (err) {
    showEntry(err && err.message === 'rate' ? REASONS.rate_limited : 'Could not reach the relay. Check the connection and try again.');
  }
}

// ---- new channel / pairing -------------------------------------------------------------------

function vcard() {
  const digits = `+${normalisePhone(s.phone)}`;
  return `BEGIN:VCARD\r\nVERSION:3.0\r\nFN:${digits}\r\nTEL;TYPE=CELL:${digits}\r\nEND:VCARD\r\n`;
}

function downloadVcard() {
  const url = URL.createObjectURL(new Blob([vcard()], { type: 'text/vcard' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = 'contact.vcf';
  document.body.append(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function copyText(text, doneMsg) {
  try {
    await navigator.clipboard.writeText(text);
    say(doneMsg);
  } catch (_) {
    say('Copy is not available here; select the text instead.');
  }
}

function showNewChannel() {
  $('new-num').textContent = s.phone;
  $('new-pin').value = '';
  $('new-terms').checked = false;
  setMsg('new-msg', '');
  show('new_channel');
}

async function confirmNewChannel(event) {
  event.preventDefault();
  const pin = $('new-pin').value;
  $('new-pin').value = '';
  if ((await accessHashFor(s.phone, pin)) !== s.accessHash) {
    setMsg('new-msg', 'That PIN does not match the one you chose.');
    focusField('new-pin');
    return;
  }
  if (!$('new-terms').checked) {
    setMsg('new-msg', 'Tick the box to confirm you understand how the channel works.');
    focusField('new-terms');
    return;
  }
  try {
    await awaitKey();
  } catch (_) {
    showEntry('The key could not be derived on this device.');
    return;
  }
  s.pairingCode = mintPairingCode();
  await storePairingCode();
  await connect({ otp_hash: await otpHash(s.pairingCode) }, 'create');
}

async function submitPair(event) {
  event.preventDefault();
  const code = normaliseOtp($('pair-code').value);
  const pin = $('pair-pin').value;
  $('pair-pin').value = '';
  if (code.length !== 8) {
    setMsg('pair-msg', 'The code has 8 letters and digits, like 7K3M-9QXZ.');
    focusField('pair-code');
    return;
  }
  if ((await accessHashFor(s.phone, pin)) !== s.accessHash) {
    setMsg('pair-msg', 'That PIN does not match the one you entered.');
    focusField('pair-pin');
    return;
  }
  setMsg('pair-msg', '');
  await connect({ otp_hash: await otpHash(code) }, 'pair');
}

// The creator's pairing code may outlive a reload in sessionStorage until the other party pairs;
// it is stored sealed with the channel key, so it neither names the channel nor opens without it.
async function storePairingCode() {
  try {
    const sealed = await encryptText(s.key, s.pairingCode);
    window.sessionStorage.setItem(PAIRING_SLOT, JSON.stringify(sealed));
  } catch (_) {
    // Without storage the code simply lives in memory for this page.
  }
}

async function loadPairingCode() {
  try {
    const raw = window.sessionStorage.getItem(PAIRING_SLOT);
    if (!raw) return null;
    const { ciphertext, iv } = JSON.parse(raw);
    return await decryptText(s.key, ciphertext, iv);
  } catch (_) {
    return null;
  }
}

function forgetPairingCode() {
  s.pairingCode = null;
  try {
    window.sessionStorage.removeItem(PAIRING_SLOT);
  } catch (_) {
    // Nothing stored.
  }
}

// ---- connection ----------------------------------------------------------------------------

async function connect(extra, context) {
  show('connecting');
  $('conn-msg').textContent = context === 'resume' ? 'Connection lost. Reconnecting…' : 'Opening the channel…';
  $('conn-actions').hidden = true;
  if (s.channel) s.channel.close('logout');
  const channel = new Channel(s.roomHash, { onBroadcast: onBroadcast, onClose: onClose });
  s.channel = channel;
  let reply;
  try {
    await channel.open();
    reply = await channel.request('join', { sender_hash: s.senderHash, access_hash: s.accessHash, ...extra });
  } catch (_) {
    if (s.channel !== channel) return;
    connectionTrouble();
    return;
  }
  if (s.channel !== channel) return;
  if (reply.ok) {
    s.reconnects = 0;
    await enterChat(reply.ok);
    return;
  }
  channel.close('logout');
  s.channel = null;
  const error = reply.error || {};
  if (error.reason === 'otp_required') {
    $('pair-code').value = '';
    setMsg('pair-msg', '');
    show('pair');
    return;
  }
  if (context === 'pair') {
    const text = {
      otp_invalid: 'Incorrect code. Check it with the person who created the channel.',
      locked: `Too many attempts: pairing is locked. ${error.retry_after ? `Try again in ${humanDuration(error.retry_after * 1000)}.` : ''}`,
      unauthorized: 'This channel was just claimed by someone else.',
    }[error.reason];
    if (text) {
      setMsg('pair-msg', text.trim());
      show('pair');
      return;
    }
  }
  if (error.reason === 'locked' || error.reason === 'unauthorized') {
    lock(reasonText(error));
    return;
  }
  showEntry(reasonText(error));
}

function connectionTrouble() {
  if (s.key && s.reconnects < 3) {
    s.reconnects += 1;
    show('connecting');
    $('conn-msg').textContent = 'Connection lost. Reconnecting…';
    window.setTimeout(() => {
      if (screen === 'connecting' && s.key) connect({}, 'resume');
    }, 1000 * 2 ** (s.reconnects - 1));
    return;
  }
  show('connecting');
  $('conn-msg').textContent = 'Could not reach the relay.';
  $('conn-actions').hidden = false;
}

function onClose({ reason, byUs }) {
  if (byUs) return;
  s.channel = null;
  if (reason === 'room_expired') {
    expired();
    return;
  }
  if (screen === 'chat') {
    clearThread();
    connectionTrouble();
  }
}

// ---- chat ----------------------------------------------------------------------------------

async function enterChat(ok) {
  s.awaiting = !!ok.awaiting_party;
  s.ttl = ok.ttl_expires_at ? Date.parse(ok.ttl_expires_at) : null;
  s.messages = [];
  if (ok.current_message) await addMessage(ok.current_message);
  if (s.awaiting && !s.pairingCode) s.pairingCode = await loadPairingCode();
  if (!s.awaiting) forgetPairingCode();
  const tried = Number(ok.failed_attempts) || 0;
  if (tried > 0 && !s.warned) {
    s.warned = true;
    setMsg('chat-warn', `Someone tried to open this channel ${tried} ${tried === 1 ? 'time' : 'times'} since your last visit.`);
  } else {
    setMsg('chat-warn', '');
  }
  setMsg('compose-msg', '');
  $('compose-text').value = '';
  renderTtl();
  window.clearInterval(ttlTimer);
  ttlTimer = window.setInterval(renderTtl, 60 * 1000);
  render();
  show('chat');
  armIdle();
}

function renderTtl() {
  const el = $('chat-ttl');
  if (!s.ttl) {
    el.textContent = '';
    return;
  }
  const left = s.ttl - Date.now();
  const hours = left / 3600000;
  let text;
  // Rounded up: a fresh 7-day channel reads "7 days", not "6 days" a few milliseconds later.
  if (hours > 48) text = `Channel expires in ${Math.ceil(hours / 24)} days`;
  else if (hours >= 1) text = `Channel expires in ${Math.ceil(hours)} hours`;
  else text = 'Channel expires in less than an hour';
  el.textContent = text;
  el.classList.toggle('soon', hours <= 48);
}

async function addMessage(payload) {
  let text;
  try {
    text = await decryptText(s.key, payload.ciphertext, payload.iv);
  } catch (_) {
    text = null;
  }
  const mine = payload.sender_hash === s.senderHash;
  const message = { id: payload.id, mine, text, read: !!payload.read_at, edited: false, editing: false };
  // N=1 on the relay: the newest message replaces the one before. The screen keeps the message it
  // answered as context, in memory only, until the next lock.
  s.messages = s.messages.filter((m) => m.id !== message.id).slice(-1);
  s.messages.push(message);
}

function current() {
  return s.messages.length ? s.messages[s.messages.length - 1] : null;
}

function myTurn() {
  const last = current();
  return !last || !last.mine;
}

function clearThread() {
  s.messages = [];
  $('thread').replaceChildren();
}

function render() {
  $('pairing').hidden = !(s.awaiting && s.pairingCode);
  $('pairing-code').textContent = s.pairingCode ? formatOtp(s.pairingCode) : '';
  $('share').hidden = !(s.messages.length === 0);
  $('share-card').hidden = !canShareCard();
  const list = $('thread');
  list.replaceChildren();
  const last = current();
  for (const m of s.messages) {
    if (m.text === null) continue;
    list.append(renderMessage(m, m === last));
  }
  const turn = myTurn();
  $('composer').hidden = !turn;
  $('waiting').hidden = turn;
  markRead();
}

function renderMessage(m, isCurrent) {
  const li = document.createElement('li');
  li.className = m.mine ? 'mine' : 'theirs';
  if (!isCurrent) li.classList.add('earlier');
  const who = document.createElement('span');
  who.className = 'sr';
  who.textContent = m.mine ? 'You wrote: ' : 'They wrote: ';
  li.append(who);
  if (m.editing) {
    li.append(renderEditor(m));
    return li;
  }
  const body = document.createElement('p');
  body.className = 'body';
  body.textContent = m.text;
  li.append(body);
  if (m.mine || m.edited) {
    const meta = document.createElement('p');
    meta.className = 'meta';
    const parts = [];
    if (m.mine) parts.push(m.read ? 'Read' : 'Delivered');
    if (m.edited) parts.push('Edited');
    meta.textContent = parts.join(' · ');
    li.append(meta);
  }
  if (m.mine && isCurrent && !m.read) {
    const tools = document.createElement('div');
    tools.className = 'row msg-tools';
    const edit = button('Edit', 'small ghost', () => {
      m.editing = true;
      render();
      focusField('edit-text');
    });
    const del = button('Delete', 'small ghost', () => deleteMessage(m));
    edit.setAttribute('aria-label', 'Edit your message');
    del.setAttribute('aria-label', 'Delete your message');
    tools.append(edit, del);
    li.append(tools);
  }
  return li;
}

function renderEditor(m) {
  const form = document.createElement('form');
  form.className = 'editor';
  form.autocomplete = 'off';
  const label = document.createElement('label');
  label.className = 'sr';
  label.htmlFor = 'edit-text';
  label.textContent = 'Edit your message';
  const area = document.createElement('textarea');
  area.id = 'edit-text';
  area.rows = 3;
  area.maxLength = MAX_CHARS;
  area.value = m.text;
  area.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      event.preventDefault();
      m.editing = false;
      render();
    }
  });
  const row = document.createElement('div');
  row.className = 'row';
  const save = button('Save', 'small primary', null);
  save.type = 'submit';
  const cancel = button('Cancel', 'small ghost', () => {
    m.editing = false;
    render();
  });
  row.append(save, cancel);
  form.append(label, area, row);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    editMessage(m, area.value);
  });
  return form;
}

function button(text, cls, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = cls;
  b.textContent = text;
  if (onClick) b.addEventListener('click', onClick);
  return b;
}

function markRead() {
  if (document.visibilityState !== 'visible' || !s.channel) return;
  for (const m of s.messages) {
    if (!m.mine && !m.read && m.text !== null && m === current()) {
      m.read = true;
      s.channel.notify('read_receipt', { message_id: m.id });
    }
  }
}

function tooLong(text) {
  return [...text].length > MAX_CHARS || utf8Length(text) + TAG_BYTES > MAX_CIPHERTEXT;
}

function updateCounter() {
  const text = $('compose-text').value;
  const n = [...text].length;
  const el = $('compose-count');
  el.textContent = n >= MAX_CHARS - 500 ? `${n} / ${MAX_CHARS}` : '';
  el.classList.toggle('over', tooLong(text));
}

async function sendMessage(event) {
  event.preventDefault();
  const area = $('compose-text');
  const text = area.value;
  if (!text.trim()) return;
  if (tooLong(text)) {
    setMsg('compose-msg', REASONS.message_too_large);
    return;
  }
  setMsg('compose-msg', '');
  const sealed = await encryptText(s.key, text);
  let reply;
  try {
    reply = await s.channel.request('send_message', sealed);
  } catch (_) {
    setMsg('compose-msg', REASONS.send_failed);
    return;
  }
  if (reply.error) {
    setMsg('compose-msg', reasonText(reply.error));
    return;
  }
  area.value = '';
  updateCounter();
  say('Message sent.');
}

async function editMessage(m, text) {
  if (!text.trim() || tooLong(text)) return;
  const sealed = await encryptText(s.key, text);
  const reply = await s.channel.request('edit_message', { message_id: m.id, ...sealed }).catch(() => null);
  if (!reply || reply.error) {
    m.editing = false;
    render();
    setMsg('compose-msg', reasonText(reply && reply.error));
    return;
  }
  m.editing = false;
  render();
  say('Message edited.');
}

async function deleteMessage(m) {
  const reply = await s.channel.request('delete_message', { message_id: m.id }).catch(() => null);
  if (!reply || reply.error) setMsg('compose-msg', reasonText(reply && reply.error));
  else say('Message deleted.');
}

async function onBroadcast(event, data) {
  switch (event) {
    case 'new_message': {
      await addMessage(data);
      const last = current();
      // Whoever sent it has stopped typing.
      if (last && !last.mine) hideTyping();
      render();
      if (last && !last.mine && last.text !== null) say('New message.');
      if (last && last.text === null) say('A message arrived that could not be decrypted.');
      break;
    }
    case 'message_read': {
      const m = s.messages.find((x) => x.id === data.message_id);
      if (m) {
        m.read = true;
        m.editing = false;
        render();
        if (m.mine) say('Your message was read.');
      }
      break;
    }
    case 'message_edited': {
      const m = s.messages.find((x) => x.id === data.message_id);
      if (m) {
        try {
          m.text = await decryptText(s.key, data.ciphertext, data.iv);
        } catch (_) {
          m.text = null;
        }
        m.edited = true;
        render();
      }
      break;
    }
    case 'message_deleted':
      s.messages = s.messages.filter((x) => x.id !== data.message_id);
      render();
      break;
    case 'counterparty_typing':
      $('typing').hidden = false;
      window.clearTimeout(typingTimer);
      typingTimer = window.setTimeout(hideTyping, TYPING_SHOWN_MS);
      break;
    case 'room_expired':
      expired();
      break;
    case 'ttl_extended':
      s.ttl = Date.parse(data.ttl_expires_at);
      renderTtl();
      break;
    case 'party_paired':
      s.awaiting = false;
      forgetPairingCode();
      render();
      say('The other person joined the channel.');
      break;
    default:
      break;
  }
}

function hideTyping() {
  window.clearTimeout(typingTimer);
  $('typing').hidden = true;
}

function onComposerInput() {
  updateCounter();
  const now = Date.now();
  if (s.channel && now - s.lastTypingSent > TYPING_EVERY_MS) {
    s.lastTypingSent = now;
    s.channel.notify('typing', {});
  }
}

async function newPairingCode() {
  const code = mintPairingCode();
  const reply = await s.channel.request('reset_pairing', { otp_hash: await otpHash(code) }).catch(() => null);
  if (!reply || reply.error) {
    setMsg('chat-warn', reasonText(reply && reply.error));
    return;
  }
  s.pairingCode = code;
  await storePairingCode();
  render();
  say('New pairing code ready.');
}

function canShareCard() {
  try {
    return !!(navigator.canShare && navigator.canShare({ files: [new File(['x'], 'contact.vcf', { type: 'text/vcard' })] }));
  } catch (_) {
    return false;
  }
}

async function shareCard() {
  try {
    await navigator.share({ files: [new File([vcard()], 'contact.vcf', { type: 'text/vcard' })] });
  } catch (_) {
    // The user closed the share sheet.
  }
}

// ---- lock, leave, expiry -------------------------------------------------------------------

function dropKeys() {
  s.key = null;
  s.keyPromise = null;
  s.accessHash = null;
  s.senderHash = null;
  clearThread();
  hideTyping();
  window.clearTimeout(idleTimer);
  window.clearTimeout(hiddenTimer);
  window.clearInterval(ttlTimer);
}

function lock(message) {
  if (s.channel) s.channel.close('lock');
  s.channel = null;
  dropKeys();
  s.pairingCode = null;
  $('locked-msg').textContent = message || 'Locked. Enter your PIN to open the channel again.';
  $('unlock-pin').value = '';
  show('locked');
  focusField('unlock-pin');
}

async function unlock(event) {
  event.preventDefault();
  const pin = $('unlock-pin').value;
  $('unlock-pin').value = '';
  if (!s.phone) {
    showEntry('');
    return;
  }
  if ([...pin].length < 4) {
    $('locked-msg').textContent = 'Enter your PIN (at least 4 characters).';
    focusField('unlock-pin');
    return;
  }
  withLookup = false;
  progress(0);
  show('deriving');
  try {
    await deriveHashes(s.phone, pin);
    progress(1);
    startKey();
    await awaitKey();
  } catch (_) {
    showEntry('The key could not be derived on this device.');
    return;
  }
  await connect({}, 'unlock');
}

function wipeSecrets() {
  if (s.channel) s.channel.close('logout');
  s.channel = null;
  dropKeys();
  s.phone = null;
  s.roomHash = null;
  s.pairingCode = null;
  s.awaiting = false;
  s.warned = false;
  s.reconnects = 0;
}

function eraseSession() {
  wipeSecrets();
  try {
    window.sessionStorage.clear();
  } catch (_) {
    // Nothing stored.
  }
}

function leave() {
  eraseSession();
  $('join-num').value = '';
  showEntry('You left the channel. It stays open for the other person until it expires.');
}

function expired() {
  eraseSession();
  show('expired');
}

async function burn() {
  const reply = await s.channel.request('expire_room', {}).catch(() => null);
  if (reply && reply.ok) expired();
  else if (screen === 'chat') setMsg('chat-warn', reasonText(reply && reply.error));
}

// ---- idle and hidden auto-lock (ours) ------------------------------------------------------

function armIdle() {
  window.clearTimeout(idleTimer);
  if (screen !== 'chat') return;
  idleTimer = window.setTimeout(() => lock('Locked after a while without activity. Enter your PIN to continue.'), s.idleSeconds * 1000);
}

function onVisibility() {
  if (document.visibilityState === 'hidden') {
    if (screen === 'chat') {
      hiddenTimer = window.setTimeout(() => lock('Locked while the page was hidden. Enter your PIN to continue.'), HIDDEN_LOCK_MS);
    }
  } else {
    window.clearTimeout(hiddenTimer);
    if (screen === 'chat') markRead();
  }
}

// ---- wiring --------------------------------------------------------------------------------

function init() {
  for (const c of COUNTRIES) {
    const option = document.createElement('option');
    option.value = c.iso;
    option.textContent = `${c.name} (+${c.cc})`;
    $('create-country').append(option);
  }
  $('tab-join').addEventListener('click', () => setMode('join'));
  $('tab-create').addEventListener('click', () => setMode('create'));
  for (const tab of [$('tab-join'), $('tab-create')]) {
    tab.addEventListener('keydown', (event) => {
      if (event.key === 'ArrowLeft' || event.key === 'ArrowRight') {
        setMode(s.mode === 'join' ? 'create' : 'join');
        $(s.mode === 'join' ? 'tab-join' : 'tab-create').focus();
      }
    });
  }
  $('create-country').addEventListener('change', regenerate);
  $('create-regen').addEventListener('click', regenerate);
  $('join-num-toggle').addEventListener('click', () => {
    const masked = $('join-num').classList.toggle('masked');
    $('join-num-toggle').setAttribute('aria-pressed', String(masked));
    $('join-num-toggle').textContent = masked ? 'Show' : 'Hide';
  });
  $('form-join').addEventListener('submit', submitEntry);
  $('form-create').addEventListener('submit', submitEntry);
  $('offer-create').addEventListener('click', () => {
    $('entry-offer').hidden = true;
    if (s.phone && s.keyPromise) showNewChannel();
  });
  $('form-new').addEventListener('submit', confirmNewChannel);
  $('new-vcard').addEventListener('click', downloadVcard);
  $('new-copy').addEventListener('click', () => copyText(s.phone, 'Number copied.'));
  $('form-pair').addEventListener('submit', submitPair);
  for (const back of document.querySelectorAll('[data-back]')) back.addEventListener('click', () => showEntry(''));
  $('conn-retry').addEventListener('click', () => {
    s.reconnects = 0;
    if (s.key) connect({}, 'resume');
    else showEntry('');
  });
  $('conn-leave').addEventListener('click', leave);
  $('chat-lock').addEventListener('click', () => lock());
  $('chat-leave').addEventListener('click', leave);
  $('chat-burn').addEventListener('click', () => $('burn-dialog').showModal());
  $('burn-dialog').addEventListener('close', () => {
    if ($('burn-dialog').returnValue === 'burn') burn();
  });
  $('pairing-copy').addEventListener('click', () => copyText(formatOtp(s.pairingCode || ''), 'Code copied.'));
  $('pairing-new').addEventListener('click', newPairingCode);
  $('share-copy').addEventListener('click', () => copyText(s.phone, 'Number copied.'));
  $('share-card').addEventListener('click', shareCard);
  $('composer').addEventListener('submit', sendMessage);
  $('compose-text').addEventListener('input', onComposerInput);
  $('compose-text').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) $('composer').requestSubmit();
  });
  $('form-unlock').addEventListener('submit', unlock);
  $('unlock-erase').addEventListener('click', () => {
    eraseSession();
    showEntry('');
  });
  $('expired-back').addEventListener('click', () => showEntry(''));
  $('idle-lock').addEventListener('change', () => {
    s.idleSeconds = Number($('idle-lock').value) || 300;
    armIdle();
  });
  $('panic').addEventListener('click', () => {
    eraseSession();
    window.location.replace('/x');
  });
  for (const type of ['pointerdown', 'keydown', 'input']) document.addEventListener(type, armIdle, { passive: true });
  document.addEventListener('visibilitychange', onVisibility);
  setMode('join');
  show('entry');
}

init();
