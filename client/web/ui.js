// Screen switching, announcements and the one object that holds this tab's secrets, shared by
// the app's modules. Keys, hashes and plaintext live only in `s` and in the DOM while shown.

export const $ = (id) => document.getElementById(id);

export const s = {
  mode: 'join',
  phone: null,
  roomHash: null,
  roomId: null,
  accessHash: null,
  senderHash: null,
  keyPromise: null,
  key: null,
  channel: null,
  pairingCode: null,
  awaiting: false,
  ttl: null,
  messages: [],
  lastTypingSent: 0,
  idleSeconds: 300,
  // Joins this page itself got refused (wrong PIN, or refused during a lock) since its last
  // successful join: the relay reports them in `failed_attempts` too, and they are not an intruder.
  ownFailures: 0,
  // Room hashes this page saw burned or closed: it never offers those numbers again.
  closed: new Set(),
  // Set while the page saw the current message deleted, so its absence after a rejoin is expected.
  sawDelete: false,
};

const ui = { screen: null };

export function screen() {
  return ui.screen;
}

export function show(name) {
  ui.screen = name;
  for (const section of document.querySelectorAll('[data-screen]')) {
    section.hidden = section.dataset.screen !== name;
  }
  document.body.dataset.state = name;
  const heading = document.querySelector(`[data-screen="${name}"] h1`);
  if (heading) heading.focus({ preventScroll: true });
}

export function say(text) {
  const live = $('announce');
  live.textContent = '';
  window.setTimeout(() => {
    live.textContent = text;
  }, 50);
}

export function setMsg(id, text) {
  const el = $(id);
  el.textContent = text || '';
  el.hidden = !text;
}

export function focusField(id) {
  window.setTimeout(() => $(id).focus(), 0);
}

// Every URL the page uses is relative to where the client is mounted (it may live under a prefix).
export function here(path) {
  return new URL(path, document.baseURI);
}
