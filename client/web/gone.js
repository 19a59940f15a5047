// The neutral page the panic route lands on by default: it names and explains nothing, and wipes
// this origin's session storage in case the app could not.
try {
  window.sessionStorage.clear();
} catch (_) {
  // Storage may be blocked by settings; there is then nothing to clear.
}
