// Session and connection state: the join, the reconnect loop that keeps the conversation on screen
// through an outage, lock and unlock (with the lock's live countdown), leave, expiry and panic.

import { Channel } from './channel.js';
import { REASONS, reasonText, humanDuration, clock } from './reasons.js';
import { $, s, screen, show, setMsg, focusField, here } from './ui.js';
import { showEntry, showPair, clearFields, roomExists, unlockWith } from './entry.js';
import { enterChat, onBroadcast, clearThread, hideTyping, stopChatTimers } from './chat.js';

const HIDDEN_LOCK_MS = 60 * 1000;
// Reconnect back-off: doubles from the first delay up to the cap, then keeps trying at the cap
// until the person leaves; `online` and the tab becoming visible try at once.
const RETRY_FIRST_MS = 1000;
const RETRY_CAP_MS = 30 * 1000;

let idleTimer = 0;
let hiddenTimer = 0;
let retryTimer = 0;
let lockTimer = 0;
const retry = { active: false, busy: false, failures: 0, at: 0 };
let lastJoin = { extra: {}, context: 'join' };
// Set from our own expire_room until its reply: the relay broadcasts room_expired to us too.
let burning = false;

export function retryJoin() {
  if (s.key) connect(lastJoin.extra, lastJoin.context);
  else showEntry('');
}

function joinData(extra) {
  return { sender_hash: s.senderHash, access_hash: s.accessHash, ...extra };
}

function openChannel() {
  if (s.channel) s.channel.close('logout');
  const channel = new Channel(s.roomHash, { onBroadcast, onClose });
  s.channel = channel;
  return channel;
}

// A first join from the entry, pair, new-channel or locked screen.
export async function connect(extra, context) {
  // Kept for "Try again": a retried create must carry the same pairing-code hash.
  lastJoin = { extra, context };
  show('connecting');
  $('conn-msg').textContent = 'Opening the channel…';
  $('conn-actions').hidden = true;
  $('conn-progress').hidden = false;
  const channel = openChannel();
  let reply;
  try {
    await channel.open();
    reply = await channel.request('join', joinData(extra));
  } catch (_) {
    if (s.channel !== channel) return;
    s.channel = null;
    // Given up: a bar still moving would promise progress that is not happening.
    $('conn-progress').hidden = true;
    $('conn-msg').textContent = REASONS.unreachable;
    $('conn-actions').hidden = false;
    return;
  }
  if (s.channel !== channel) return;
  if (reply.ok) {
    await joined(reply.ok, false);
    return;
  }
  channel.close('logout');
  s.channel = null;
  refused(reply.error || {}, context);
}

async function joined(ok, rejoin) {
  const tried = Math.max(0, (Number(ok.failed_attempts) || 0) - s.ownFailures);
  s.ownFailures = 0;
  await enterChat(ok, { rejoin, tried });
  armIdle();
}

function refused(error, context) {
  if (error.reason === 'otp_required') {
    $('pair-code').value = '';
    showPair('');
    return;
  }
  if (context === 'pair') {
    if (error.reason === 'otp_invalid') {
      showPair(reasonText(error));
      return;
    }
    if (error.reason === 'locked') {
      const wait = Number.isInteger(error.retry_after) ? ` Try again in ${humanDuration(error.retry_after * 1000)}.` : '';
      showPair(REASONS.pair_locked + wait);
      return;
    }
    if (error.reason === 'unauthorized') {
      showPair(REASONS.pair_claimed);
      return;
    }
  }
  if (error.reason === 'locked' || error.reason === 'unauthorized') {
    // The relay counts these in the owners' `failed_attempts`; this page knows they were its own.
    s.ownFailures += 1;
    lock(reasonText({ reason: error.reason, attempts_remaining: error.attempts_remaining }), error.retry_after);
    return;
  }
  showEntry(reasonText(error));
}

// ---- reconnecting --------------------------------------------------------------------------

function onClose({ reason, byUs }) {
  if (byUs) return;
  s.channel = null;
  if (reason === 'room_expired') {
    roomExpired();
    return;
  }
  if (screen() === 'chat') startReconnect();
}

export function reconnecting() {
  return retry.active;
}

function startReconnect() {
  if (retry.active) return;
  retry.active = true;
  retry.failures = 0;
  hideTyping();
  banner('Connection lost. Reconnecting…');
  schedule(0);
}

function banner(text) {
  setMsg('chat-conn', text);
  $('chat').classList.toggle('offline', !!text);
}

function schedule(delay) {
  window.clearTimeout(retryTimer);
  retry.at = Date.now() + delay;
  retryTimer = window.setTimeout(tryRejoin, delay);
}

// Called on `online` and when the tab becomes visible: no reason to wait out the back-off.
export function retryNow() {
  if (retry.active && !retry.busy) schedule(0);
}

function stopReconnect() {
  retry.active = false;
  window.clearTimeout(retryTimer);
  banner('');
}

async function tryRejoin() {
  if (!retry.active || retry.busy || !s.key) return;
  retry.busy = true;
  try {
    await rejoin();
  } finally {
    retry.busy = false;
  }
}

async function rejoin() {
  let exists;
  try {
    exists = await roomExists(s.roomHash);
  } catch (_) {
    backOff();
    return;
  }
  if (!retry.active) return;
  // A join on a room that no longer exists would create a new one: check first.
  if (!exists) {
    expired('away');
    return;
  }
  const channel = openChannel();
  let reply;
  try {
    await channel.open();
    reply = await channel.request('join', joinData({}));
  } catch (_) {
    if (s.channel === channel) s.channel = null;
    backOff();
    return;
  }
  if (s.channel !== channel || !retry.active) return;
  if (reply.ok) {
    if (s.roomId && reply.ok.room_id && reply.ok.room_id !== s.roomId) {
      // The room closed and this join made a new one in the gap after the check: undo it.
      await channel.request('expire_room', {}).catch(() => null);
      expired('away');
      return;
    }
    stopReconnect();
    await joined(reply.ok, true);
    return;
  }
  const error = reply.error || {};
  if (error.reason === 'rate_limited' || error.reason === 'internal_error') {
    channel.close('logout');
    s.channel = null;
    backOff();
    return;
  }
  channel.close('logout');
  s.channel = null;
  stopReconnect();
  refused(error, 'resume');
}

function backOff() {
  retry.failures += 1;
  const delay = Math.min(RETRY_CAP_MS, RETRY_FIRST_MS * 2 ** (retry.failures - 1));
  banner(`Connection lost. Reconnecting… (try ${retry.failures + 1} in ${Math.round(delay / 1000)} s)`);
  schedule(delay);
}

// ---- lock and unlock -----------------------------------------------------------------------

function dropKeys() {
  stopReconnect();
  s.key = null;
  s.keyPromise = null;
  s.accessHash = null;
  s.senderHash = null;
  clearThread();
  hideTyping();
  stopChatTimers();
  $('compose-text').value = '';
  window.clearTimeout(idleTimer);
  window.clearTimeout(hiddenTimer);
}

export function lock(message, retryAfter) {
  if (s.channel) s.channel.close('lock');
  s.channel = null;
  dropKeys();
  s.pairingCode = null;
  $('locked-msg').textContent = message || 'Locked. Enter your PIN to open the channel again.';
  $('unlock-pin').value = '';
  startLockCountdown(Number.isInteger(retryAfter) && retryAfter > 0 ? Date.now() + retryAfter * 1000 : 0);
  show('locked');
  focusField('unlock-pin');
}

// While the relay's lock runs, Unlock is disabled and the time left counts down every second.
function startLockCountdown(until) {
  window.clearInterval(lockTimer);
  const wait = $('locked-wait');
  const go = $('unlock-go');
  if (!until) {
    wait.hidden = true;
    go.disabled = false;
    return;
  }
  const tick = () => {
    const left = until - Date.now();
    if (left <= 0) {
      window.clearInterval(lockTimer);
      wait.textContent = 'The lock has ended. You can enter your PIN now.';
      go.disabled = false;
      return;
    }
    wait.textContent = `You can try again in ${clock(left)}.`;
  };
  wait.hidden = false;
  go.disabled = true;
  tick();
  lockTimer = window.setInterval(tick, 1000);
}

export async function unlock(event) {
  event.preventDefault();
  if ($('unlock-go').disabled) return;
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
  await unlockWith(pin);
}

// ---- leaving -------------------------------------------------------------------------------

export function wipeSecrets() {
  if (s.channel) s.channel.close('logout');
  s.channel = null;
  dropKeys();
  window.clearInterval(lockTimer);
  s.phone = null;
  s.roomHash = null;
  s.roomId = null;
  s.pairingCode = null;
  s.awaiting = false;
  s.sawDelete = false;
}

export function eraseSession() {
  wipeSecrets();
  s.ownFailures = 0;
  clearFields();
  try {
    window.sessionStorage.clear();
  } catch (_) {
    // Nothing stored.
  }
}

export function erase() {
  eraseSession();
  showEntry('Erased. Nothing about that channel is left on this page.');
}

export function leave() {
  eraseSession();
  showEntry('You left the channel. It stays open for the other person until it closes.');
}

const CLOSED_TEXT = {
  you: 'You closed this channel.',
  other: 'The other person closed this channel.',
  time: 'This channel reached its closing date and closed by itself.',
  away: 'This channel was closed while you were disconnected, by the other person or because it reached its closing date.',
};

// `by`: who closed it, as far as this page can tell.
export function expired(by) {
  const why = by === 'other' && s.ttl && Date.now() >= s.ttl - 60 * 1000 ? 'time' : by;
  if (s.roomHash) s.closed.add(s.roomHash);
  eraseSession();
  $('expired-who').textContent = CLOSED_TEXT[why] || CLOSED_TEXT.other;
  show('expired');
}

// The relay's room_expired broadcast (or close): ours if we asked for it.
export function roomExpired() {
  expired(burning ? 'you' : 'other');
}

export async function burn() {
  burning = true;
  const reply = await s.channel?.request('expire_room', {}).catch(() => null);
  burning = false;
  if (reply && reply.ok) {
    if (screen() !== 'expired') expired('you');
  } else if (screen() === 'chat') setMsg('chat-warn', reasonText(reply && reply.error));
}

export function panic() {
  eraseSession();
  // replace(): the chat's history entry is swapped for the panic route, so Back cannot return.
  window.location.replace(here('x'));
}

// ---- idle and hidden auto-lock (ours) ------------------------------------------------------

export function armIdle() {
  window.clearTimeout(idleTimer);
  if (screen() !== 'chat') return;
  idleTimer = window.setTimeout(() => lock('Locked after a while without activity. Enter your PIN to continue.'), s.idleSeconds * 1000);
}

export function onHidden() {
  if (screen() === 'chat') {
    hiddenTimer = window.setTimeout(() => lock('Locked while the page was hidden. Enter your PIN to continue.'), HIDDEN_LOCK_MS);
  }
}

export function onShown() {
  window.clearTimeout(hiddenTimer);
  retryNow();
}
