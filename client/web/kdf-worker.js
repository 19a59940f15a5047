// The PBKDF2 worker: runs the 600,000-round key derivation off the page's thread and hands back a
// non-extractable CryptoKey (structured clone carries it; its bytes never reach the page).
import { deriveChannelKey } from './crypto.js';

self.addEventListener('message', async (event) => {
  const { id, phone, roomHash } = event.data || {};
  try {
    const key = await deriveChannelKey(phone, roomHash, false);
    self.postMessage({ id, key });
  } catch (err) {
    self.postMessage({ id, error: String(err && err.message ? err.message : err) });
  }
});
