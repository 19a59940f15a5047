// The browser app's entry point: wires the screens of CLIENT-UX.md
// (entry → deriving → new_channel | pair → connecting → chat → locked → expired) to their handlers.
// session.js holds the connection and lock state, entry.js the entry and pairing steps, chat.js
// the chat screen, reasons.js every reason text.

import { formatOtp } from './crypto.js';
import { COUNTRIES } from './steg.js';
import { $, s, screen, show } from './ui.js';
import {
  setMode,
  regenerate,
  showEntry,
  submitEntry,
  showNewChannel,
  confirmNewChannel,
  submitPair,
  downloadVcard,
  copyText,
  vcard,
} from './entry.js';
import { retryJoin, unlock, erase, leave, burn, panic, armIdle, onHidden, onShown, retryNow, lock } from './session.js';
import {
  sendMessage,
  composerKey,
  onComposerInput,
  deleteDialogClosed,
  newPairingCode,
  canShareCard,
  openSecurity,
  redeemExtension,
  maybeRead,
  updateCounter,
} from './chat.js';

async function shareCard() {
  try {
    await navigator.share({ files: [new File([vcard()], 'contact.vcf', { type: 'text/vcard' })] });
  } catch (_) {
    // The user closed the share sheet.
  }
}

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
    $('join-pin').value = '';
    if (s.phone && s.keyPromise) showNewChannel();
  });
  $('form-new').addEventListener('submit', confirmNewChannel);
  $('new-vcard').addEventListener('click', downloadVcard);
  $('new-copy').addEventListener('click', () => copyText(s.phone, 'Number copied.'));
  $('form-pair').addEventListener('submit', submitPair);
  for (const back of document.querySelectorAll('[data-back]')) back.addEventListener('click', () => showEntry(''));
  $('conn-retry').addEventListener('click', retryJoin);
  $('conn-leave').addEventListener('click', leave);
  $('chat-lock').addEventListener('click', () => lock());
  $('chat-leave').addEventListener('click', leave);
  $('chat-burn').addEventListener('click', () => $('burn-dialog').showModal());
  $('burn-dialog').addEventListener('close', () => {
    if ($('burn-dialog').returnValue === 'burn') burn();
  });
  $('delete-dialog').addEventListener('close', deleteDialogClosed);
  $('pairing-copy').addEventListener('click', () => copyText(formatOtp(s.pairingCode || ''), 'Code copied.'));
  $('pairing-new').addEventListener('click', newPairingCode);
  $('share-copy').addEventListener('click', () => copyText(s.phone, 'Number copied.'));
  $('share-card').hidden = !canShareCard();
  $('share-card').addEventListener('click', shareCard);
  $('composer').addEventListener('submit', sendMessage);
  $('compose-text').addEventListener('input', onComposerInput);
  $('compose-text').addEventListener('keydown', composerKey);
  $('form-extend').addEventListener('submit', redeemExtension);
  $('form-unlock').addEventListener('submit', unlock);
  $('unlock-erase').addEventListener('click', erase);
  $('expired-back').addEventListener('click', () => showEntry(''));
  $('idle-lock').addEventListener('change', () => {
    s.idleSeconds = Number($('idle-lock').value) || 300;
    armIdle();
  });
  $('panic').addEventListener('click', panic);
  for (const link of document.querySelectorAll('[data-security]')) {
    link.addEventListener('click', (event) => {
      // Inside a channel the page opens in a dialog; elsewhere the link simply navigates.
      if (!['chat', 'locked', 'connecting', 'pair', 'new_channel'].includes(screen())) return;
      event.preventDefault();
      openSecurity();
    });
  }
  for (const type of ['pointerdown', 'keydown', 'input']) document.addEventListener(type, armIdle, { passive: true });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') onHidden();
    else onShown();
    maybeRead();
  });
  window.addEventListener('focus', maybeRead);
  window.addEventListener('online', retryNow);
  setMode('join');
  updateCounter();
  show('entry');
}

init();
