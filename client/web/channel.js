// One WebSocket to the relay speaking sTELgano-std-1 frames (PROTOCOL.md §2): requests carry a ref
// and resolve with the reply; broadcasts and the close go to the callbacks given at open.

export class Channel {
  constructor(roomHash, { onBroadcast, onClose }) {
    // Relative to where the client is mounted, so the relay may sit under a path prefix.
    const url = new URL(`room/${roomHash}/ws`, document.baseURI);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    this.url = url.href;
    this.onBroadcast = onBroadcast;
    this.onClose = onClose;
    this.pending = new Map();
    this.nextRef = 1;
    this.socket = null;
    this.closedByUs = false;
  }

  // Resolves once the socket is open; rejects if it fails first.
  open() {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url);
      this.socket = socket;
      let opened = false;
      socket.addEventListener('open', () => {
        opened = true;
        resolve();
      });
      socket.addEventListener('message', (event) => this.receive(event.data));
      socket.addEventListener('close', (event) => {
        for (const waiter of this.pending.values()) waiter.reject(new Error('closed'));
        this.pending.clear();
        if (!opened) reject(new Error('connect failed'));
        else if (this.onClose) this.onClose({ code: event.code, reason: event.reason, byUs: this.closedByUs });
      });
    });
  }

  receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (_) {
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    if (typeof frame.ref === 'string' && this.pending.has(frame.ref)) {
      const waiter = this.pending.get(frame.ref);
      this.pending.delete(frame.ref);
      waiter.resolve(frame);
    } else if (typeof frame.event === 'string' && this.onBroadcast) {
      this.onBroadcast(frame.event, frame.data || {});
    }
  }

  // Sends an event that gets a reply; resolves with `{ok}` or `{error}` as the relay sent them.
  request(event, data) {
    const ref = String(this.nextRef);
    this.nextRef += 1;
    return new Promise((resolve, reject) => {
      if (!this.socket || this.socket.readyState !== WebSocket.OPEN) {
        reject(new Error('not connected'));
        return;
      }
      this.pending.set(ref, { resolve, reject });
      this.socket.send(JSON.stringify({ event, ref, data }));
    });
  }

  // read_receipt and typing get no reply, so they go without a ref.
  notify(event, data) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ event, data }));
    }
  }

  close(reason) {
    this.closedByUs = true;
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000, reason);
  }
}
