// The web client's one table of plain-language texts for the relay's error reasons
// (PROTOCOL.md §7), and the few helpers that add numbers to them.

export const REASONS = {
  invalid_room: 'The relay did not accept this channel address.',
  invalid_sender: 'The relay did not accept this device’s credentials. Check the number and PIN.',
  invalid_access: 'The relay did not accept this device’s credentials. Check the number and PIN.',
  not_found: 'That message is no longer there.',
  locked:
    'Too many wrong PINs were tried, so this channel is locked for a while. During the lock nobody can open it, not even with the right PIN. When you get in again, you will both be told how many attempts were made.',
  unauthorized: 'Wrong PIN for this channel.',
  not_joined: 'Not connected to the channel yet. Try again.',
  not_your_turn: 'Wait for a reply before you write again.',
  message_too_large: 'That message is too long.',
  invalid_encoding: 'The message could not be encoded.',
  send_failed: 'The message could not be sent. Try again.',
  not_editable: 'Already read: it can no longer be edited.',
  not_deletable: 'Already read: it can no longer be deleted.',
  expire_failed: 'The channel could not be closed. Try again.',
  invalid_token: 'That token is unknown or already used.',
  payment_pending: 'A payment is still pending.',
  monetization_disabled: 'Extending channels is not offered here.',
  otp_required: 'This channel needs a pairing code.',
  otp_invalid: 'Incorrect code. Check it with the person who created the channel.',
  invalid_topic: 'The relay did not understand a request.',
  internal_error: 'The relay had a problem. Try again.',
  rate_limited: 'Too many attempts from this network. Wait a minute and try again.',
  // Not relay reasons: the page's own outcomes, kept here so every text lives in one table.
  unreachable: 'Could not reach the relay. Check the connection and try again.',
  // A deployment of several relays answers 503 for a channel whose relay is down (it fails
  // closed rather than open the channel elsewhere): say so without blaming the person.
  room_unavailable: 'This channel cannot be opened right now: the server that keeps it is down. Nothing is lost; try again in a few minutes.',
  key_failed: 'The key could not be derived on this device.',
  pair_locked: 'Too many wrong codes: pairing is locked for now.',
  pair_claimed: 'This channel was just claimed by someone else.',
};

const FALLBACK = 'Something went wrong. Try again.';

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

// The sentence for a relay error, with the attempts left when the relay says how many.
export function reasonText(error) {
  if (!error) return FALLBACK;
  let text = REASONS[error.reason] || FALLBACK;
  if (Number.isInteger(error.attempts_remaining)) {
    if (error.reason === 'unauthorized') {
      text += ` ${plural(error.attempts_remaining, 'try', 'tries')} left before the channel locks.`;
    } else if (error.reason === 'otp_invalid') {
      text += ` ${plural(error.attempts_remaining, 'try', 'tries')} left before pairing locks.`;
    }
  }
  return text;
}

// "3 minutes", "2 hours": rounded up, since a shorter promise would be broken.
export function humanDuration(ms) {
  const minutes = Math.max(1, Math.ceil(ms / 60000));
  if (minutes < 60) return plural(minutes, 'minute', 'minutes');
  return plural(Math.ceil(minutes / 60), 'hour', 'hours');
}

// A live countdown: "29:41" or "1:05:00".
export function clock(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

export function attemptsWarning(n) {
  return `Someone tried to open this channel ${plural(n, 'time', 'times')} with a wrong PIN since you last opened it. If that was not the other person, the number may have leaked.`;
}
