// Loaded by every page: keeps the address bar and the history entry at "/", and honours the panic
// route (/x redirects to /?p=1, which wipes this tab's session storage).

const panic = new URLSearchParams(window.location.search).has('p');
if (panic) {
  try {
    window.sessionStorage.clear();
  } catch (_) {
    // Storage may be unavailable (blocked by settings); there is then nothing to clear.
  }
}
window.history.replaceState(null, '', '/');
window.addEventListener('popstate', () => window.history.replaceState(null, '', '/'));

// Links between pages replace the current entry, so the history never grows past one "/".
document.addEventListener('click', (event) => {
  const link = event.target instanceof Element ? event.target.closest('a[data-go]') : null;
  if (!link || event.defaultPrevented || event.button !== 0 || event.ctrlKey || event.metaKey) return;
  event.preventDefault();
  window.location.replace(link.getAttribute('href'));
});
