// Loaded by every page of the app: keeps the address bar and the history entry at the client's
// root (wherever it is mounted), and honours the old panic landing (`?p=1` wipes this tab's session
// storage).

const root = new URL('./', window.location.href).pathname;
const panic = new URLSearchParams(window.location.search).has('p');
if (panic) {
  try {
    window.sessionStorage.clear();
  } catch (_) {
    // Storage may be unavailable (blocked by settings); there is then nothing to clear.
  }
}
window.history.replaceState(null, '', root);
window.addEventListener('popstate', () => window.history.replaceState(null, '', root));

// Links between pages replace the current entry, so the history never grows past one entry.
document.addEventListener('click', (event) => {
  const link = event.target instanceof Element ? event.target.closest('a[data-go]') : null;
  if (!link || event.defaultPrevented || event.button !== 0 || event.ctrlKey || event.metaKey) return;
  event.preventDefault();
  window.location.replace(link.href);
});
