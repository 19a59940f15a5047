// The chat screen: the thread (N=1 plus the answered message as context), the composer with its
// byte counter, edit/delete, read receipts sent only once a message is really seen, the pairing
// panel, the closing date and its extension, and the relay's broadcasts.

import { otpHash, mintPairingCode, formatOtp, encryptText, decryptText, utf8Length } from './crypto.js';
import { REASONS, reasonText, attemptsWarning } from './reasons.js';
import { $, s, screen, show, say, setMsg, focusField, here } from './ui.js';
import { storePairingCode, loadPairingCode, forgetPairingCode } from './entry.js';
import { roomExpired } from './session.js';

// The relay's limit is on the decoded ciphertext: the UTF-8 text plus AES-GCM's 16-byte tag.
const MAX_CIPHERTEXT = 8192;
const TAG_BYTES = 16;
const MAX_TEXT_BYTES = MAX_CIPHERTEXT - TAG_BYTES;
const COUNTER_FROM = 0.8;
const TYPING_EVERY_MS = 2500;
const TYPING_SHOWN_MS = 4000;

let typingTimer = 0;
let ttlTimer = 0;
let seenObserver = null;
// Whether the current incoming message is on screen (from the IntersectionObserver).
let currentOnScreen = false;
let extensionOffered = null;

export async function enterChat(ok, { rejoin, tried }) {
  const held = rejoin ? current() : null;
  s.awaiting = !!ok.awaiting_party;
  s.roomId = ok.room_id || s.roomId;
  s.ttl = closingTime(ok.ttl_expires_at);
  if (!rejoin) s.messages = [];
  if (ok.current_message) {
    await addMessage(ok.current_message);
    setMsg('chat-lost', '');
  } else if (held && !s.sawDelete) {
    // The page held a message the relay no longer has, and saw no delete or burn: the relay
    // restarted (it keeps messages in memory only).
    held.lost = true;
    setMsg(
      'chat-lost',
      held.mine
        ? 'The relay restarted while you were disconnected, and your last message was not kept. Send it again if it still matters.'
        : 'The relay restarted while you were disconnected, and the last message was not kept. Ask the other person to send it again if you need it.',
    );
  }
  s.sawDelete = false;
  if (s.awaiting && !s.pairingCode) s.pairingCode = await loadPairingCode();
  if (!s.awaiting) forgetPairingCode();
  if (tried > 0) setMsg('chat-warn', attemptsWarning(tried));
  else if (!rejoin) setMsg('chat-warn', '');
  if (!rejoin) {
    setMsg('compose-msg', '');
    setMsg('chat-lost', '');
    $('compose-text').value = '';
    setMsg('extend-msg', '');
  }
  updateCounter();
  renderTtl();
  window.clearInterval(ttlTimer);
  ttlTimer = window.setInterval(renderTtl, 60 * 1000);
  if (screen() !== 'chat') show('chat');
  render();
  offerExtension();
}

export function stopChatTimers() {
  window.clearInterval(ttlTimer);
  window.clearTimeout(typingTimer);
}

// ---- closing date and extension -------------------------------------------------------------

function closingDate(ms) {
  return new Date(ms).toLocaleString(undefined, { weekday: 'long', day: 'numeric', month: 'long', hour: '2-digit', minute: '2-digit' });
}

// A relay whose operator set no expiry reports the last moment of the year 9999: no closing date.
function closingTime(iso) {
  const ms = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(ms) && new Date(ms).getUTCFullYear() < 9999 ? ms : null;
}

function renderTtl() {
  const el = $('chat-ttl');
  if (!s.ttl) {
    el.textContent = 'This channel has no closing date: it stays until one of you burns it.';
    el.classList.remove('soon');
    return;
  }
  const left = s.ttl - Date.now();
  const hours = left / 3600000;
  let when;
  if (hours >= 48) when = `in ${Math.round(hours / 24)} days`;
  else if (hours >= 1) when = `in ${Math.floor(hours)} ${Math.floor(hours) === 1 ? 'hour' : 'hours'}`;
  else when = 'in less than an hour';
  el.textContent = `Closes by itself ${when}, on ${closingDate(s.ttl)}. Its message is then deleted.`;
  el.classList.toggle('soon', hours < 48);
}

// GET api/config: any failure means "no extensions here", quietly.
async function offerExtension() {
  if (extensionOffered === null) {
    try {
      const res = await fetch(here('api/config'), { cache: 'no-store', credentials: 'omit' });
      const config = res.ok ? await res.json() : {};
      extensionOffered = !!(config && config.monetization_enabled);
    } catch (_) {
      extensionOffered = false;
    }
  }
  $('extend').hidden = !extensionOffered || screen() !== 'chat';
}

export async function redeemExtension(event) {
  event.preventDefault();
  const secret = $('extend-token').value.trim();
  if (!secret) {
    setMsg('extend-msg', 'Paste the extension token you were given.');
    focusField('extend-token');
    return;
  }
  const reply = await s.channel?.request('redeem_extension', { extension_secret: secret }).catch(() => null);
  if (reply && reply.ok) {
    $('extend-token').value = '';
    s.ttl = closingTime(reply.ok.ttl_expires_at);
    renderTtl();
    setMsg('extend-msg', s.ttl ? `Extended: the channel now closes on ${closingDate(s.ttl)}.` : 'Extended: the channel has no closing date now.');
    return;
  }
  const error = reply && reply.error;
  if (error && error.reason === 'monetization_disabled') {
    extensionOffered = false;
    $('extend').hidden = true;
    return;
  }
  setMsg('extend-msg', reasonText(error || { reason: 'not_joined' }));
}

// ---- messages ------------------------------------------------------------------------------

async function addMessage(payload) {
  let text;
  try {
    text = await decryptText(s.key, payload.ciphertext, payload.iv);
  } catch (_) {
    text = null;
  }
  const mine = payload.sender_hash === s.senderHash;
  const message = { id: payload.id, mine, text, read: !!payload.read_at, edited: false, editing: false, lost: false };
  const same = s.messages.find((m) => m.id === message.id);
  if (same) {
    message.edited = same.edited || same.text !== text;
    message.editing = same.editing && !message.read;
  }
  // N=1 on the relay: the newest message replaces the one before. The screen keeps the message it
  // answered as context, in memory only, until the next lock.
  s.messages = s.messages.filter((m) => m.id !== message.id && !m.lost).slice(-1);
  s.messages.push(message);
}

function current() {
  const last = s.messages.length ? s.messages[s.messages.length - 1] : null;
  return last && !last.lost ? last : null;
}

function myTurn() {
  const last = current();
  return !last || !last.mine;
}

export function clearThread() {
  s.messages = [];
  $('thread').replaceChildren();
  setMsg('chat-lost', '');
  if (seenObserver) seenObserver.disconnect();
}

function render() {
  const awaiting = s.awaiting;
  $('pairing').hidden = !awaiting;
  $('pairing-has-code').hidden = !s.pairingCode;
  $('pairing-no-code').hidden = !!s.pairingCode;
  $('pairing-code').textContent = s.pairingCode ? formatOtp(s.pairingCode) : '';
  $('pairing-copy').hidden = !s.pairingCode;
  const empty = s.messages.length === 0;
  $('share').hidden = !(empty && awaiting);
  $('empty').hidden = !(empty && !awaiting);
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
  watchCurrent();
}

function renderMessage(m, isCurrent) {
  const li = document.createElement('li');
  li.className = m.mine ? 'mine' : 'theirs';
  li.dataset.id = m.id;
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
  const parts = [];
  if (m.lost) parts.push('Not kept by the relay');
  else if (m.mine) parts.push(m.read ? 'Read' : 'Delivered');
  if (m.edited) parts.push('Edited');
  if (parts.length) {
    const meta = document.createElement('p');
    meta.className = 'meta';
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
    const del = button('Delete', 'small ghost', () => askDelete(m));
    edit.classList.add('msg-edit');
    del.classList.add('msg-delete');
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

// ---- read receipts -------------------------------------------------------------------------

// A receipt ends the author's chance to edit or delete, so it goes only once the message has
// really been seen: the tab visible and focused, and at least half the message (or half the
// screen, for a long one) in view.
function watchCurrent() {
  if (seenObserver) seenObserver.disconnect();
  currentOnScreen = false;
  const last = current();
  if (!last || last.mine || last.read || last.text === null) return;
  const li = $('thread').querySelector(`li[data-id="${CSS.escape(last.id)}"]`);
  if (!li) return;
  if (!seenObserver) {
    seenObserver = new IntersectionObserver(
      (entries) => {
        for (const entry of entries) {
          // Half the message, or half the screen for a message taller than the screen.
          const screenHeight = entry.rootBounds ? entry.rootBounds.height : 0;
          currentOnScreen =
            entry.isIntersecting && (entry.intersectionRatio >= 0.5 || entry.intersectionRect.height >= screenHeight * 0.5);
        }
        maybeRead();
      },
      { threshold: [0, 0.25, 0.5, 0.75, 1] },
    );
  }
  seenObserver.observe(li);
}

export function maybeRead() {
  const last = current();
  if (!last || last.mine || last.read || last.text === null || !s.channel) return;
  if (screen() !== 'chat' || document.visibilityState !== 'visible' || !document.hasFocus() || !currentOnScreen) return;
  last.read = true;
  s.channel.notify('read_receipt', { message_id: last.id });
}

// ---- composing -----------------------------------------------------------------------------

function bytesOver(text) {
  return utf8Length(text) - MAX_TEXT_BYTES;
}

export function updateCounter() {
  const text = $('compose-text').value;
  const used = utf8Length(text);
  const over = used - MAX_TEXT_BYTES;
  const el = $('compose-count');
  el.textContent = used >= MAX_TEXT_BYTES * COUNTER_FROM ? `${used.toLocaleString('en')} / ${MAX_TEXT_BYTES.toLocaleString('en')} bytes` : '';
  el.classList.toggle('over', over > 0);
  $('compose-send').disabled = over > 0;
  setMsg(
    'compose-limit',
    over > 0 ? `Too long to send: ${over.toLocaleString('en')} bytes over the limit. Emoji and accented letters take more room than plain letters.` : '',
  );
}

export async function sendMessage(event) {
  event.preventDefault();
  const area = $('compose-text');
  const text = area.value;
  if (!text.trim()) return;
  if (bytesOver(text) > 0) {
    updateCounter();
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

// Enter sends, Shift+Enter adds a line (as in other messengers).
export function composerKey(event) {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    if (!$('compose-send').disabled) $('composer').requestSubmit();
  }
}

async function editMessage(m, text) {
  if (!text.trim() || bytesOver(text) > 0) return;
  const sealed = await encryptText(s.key, text);
  const reply = await s.channel?.request('edit_message', { message_id: m.id, ...sealed }).catch(() => null);
  m.editing = false;
  render();
  if (!reply || reply.error) {
    setMsg('compose-msg', reasonText(reply && reply.error));
    return;
  }
  say('Message edited.');
}

let pendingDelete = null;

function askDelete(m) {
  pendingDelete = m;
  $('delete-dialog').showModal();
}

export async function deleteDialogClosed() {
  const m = pendingDelete;
  pendingDelete = null;
  if (!m || $('delete-dialog').returnValue !== 'delete') return;
  const reply = await s.channel?.request('delete_message', { message_id: m.id }).catch(() => null);
  if (!reply || reply.error) setMsg('compose-msg', reasonText(reply && reply.error));
  else say('Message deleted.');
}

export function onComposerInput() {
  updateCounter();
  const now = Date.now();
  if (s.channel && now - s.lastTypingSent > TYPING_EVERY_MS) {
    s.lastTypingSent = now;
    s.channel.notify('typing', {});
  }
}

// ---- broadcasts ----------------------------------------------------------------------------

export async function onBroadcast(event, data) {
  switch (event) {
    case 'new_message': {
      await addMessage(data);
      setMsg('chat-lost', '');
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
      s.sawDelete = true;
      render();
      break;
    case 'counterparty_typing':
      $('typing').hidden = false;
      window.clearTimeout(typingTimer);
      typingTimer = window.setTimeout(hideTyping, TYPING_SHOWN_MS);
      break;
    case 'room_expired':
      roomExpired();
      break;
    case 'ttl_extended':
      s.ttl = closingTime(data.ttl_expires_at);
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

export function hideTyping() {
  window.clearTimeout(typingTimer);
  $('typing').hidden = true;
}

// ---- pairing panel, sharing, security ---------------------------------------------------------

export async function newPairingCode() {
  const code = mintPairingCode();
  const reply = await s.channel?.request('reset_pairing', { otp_hash: await otpHash(code) }).catch(() => null);
  if (!reply || reply.error) {
    setMsg('chat-warn', reasonText(reply && reply.error));
    return;
  }
  s.pairingCode = code;
  await storePairingCode();
  render();
  say('New pairing code ready. The old one no longer works.');
}

export function canShareCard() {
  try {
    return !!(navigator.canShare && navigator.canShare({ files: [new File(['x'], 'contact.vcf', { type: 'text/vcard' })] }));
  } catch (_) {
    return false;
  }
}

// The security page in a dialog: reading it must not end the session.
export async function openSecurity() {
  const body = $('security-body');
  if (!body.childElementCount) {
    try {
      const res = await fetch(here('security'), { cache: 'no-store', credentials: 'omit' });
      const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
      const main = doc.querySelector('main');
      for (const child of main ? [...main.children] : []) {
        // Links would leave the chat; in the dialog they become plain text.
        for (const a of child.querySelectorAll('a')) a.replaceWith(doc.createTextNode(a.textContent));
        body.append(document.importNode(child, true));
      }
      const h = body.querySelector('h1');
      if (h) h.remove();
    } catch (_) {
      body.textContent = REASONS.unreachable;
    }
  }
  $('security-dialog').showModal();
  // Open at the top: the dialog would otherwise scroll to its focused button at the bottom.
  $('security-dialog').scrollTop = 0;
  $('security-h').focus();
}
