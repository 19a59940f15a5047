// The page's side of the key worker: one long-lived module worker, requests matched by id.
import { normalisePhone } from './crypto.js';

let worker = null;
let nextId = 1;
const pending = new Map();

function ensureWorker() {
  if (worker) return worker;
  worker = new Worker(new URL('kdf-worker.js', import.meta.url), { type: 'module' });
  worker.addEventListener('message', (event) => {
    const { id, key, error } = event.data || {};
    const waiter = pending.get(id);
    if (!waiter) return;
    pending.delete(id);
    if (error || !key) waiter.reject(new Error(error || 'no key'));
    else waiter.resolve(key);
  });
  worker.addEventListener('error', () => {
    for (const waiter of pending.values()) waiter.reject(new Error('key worker failed'));
    pending.clear();
    worker = null;
  });
  return worker;
}

// Resolves to the AES-GCM CryptoKey for a number (as typed) and its room hash.
export function deriveKeyInWorker(rawPhone, roomHash) {
  const id = nextId;
  nextId += 1;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    ensureWorker().postMessage({ id, phone: normalisePhone(rawPhone), roomHash });
  });
}
