// A browser client for ringcast's push mode (README.md, "Push mode"): subscribes to topics,
// hands every message to a callback, and after a dropped connection reconnects (with backoff)
// resuming each topic from the last message it got, so nothing is missed while history holds
// it; when it does not, `onGap` tells the application to refetch its state.
//
//   const sub = new RingcastSubscriber("ws://127.0.0.1:9001/ws", ["news"], {
//     onMessage: (m) => console.log(m.topic, m.seq, m.data),
//     onGap: (g) => console.warn("missed messages of", g.topic, "before", g.next),
//   });
//   ...
//   sub.close();
//
// Handlers (all optional): onMessage, onGap, onSubscribed, onError, onNotice, onDisconnect.
// Options: firstBackoffMs (100), maxBackoffMs (5000) between reconnect attempts.
class RingcastSubscriber {
  constructor(url, topics, handlers = {}, options = {}) {
    this.url = url;
    this.topics = topics;
    this.handlers = handlers;
    this.positions = new Map(); // topic -> {epoch, seq} of the last message received
    this.reconnects = 0;
    this.closed = false;
    this.firstBackoffMs = options.firstBackoffMs ?? 100;
    this.maxBackoffMs = options.maxBackoffMs ?? 5000;
    this.backoffMs = this.firstBackoffMs;
    this.connect();
  }

  // The upgrade URL: the topics, and where to resume each one already seen.
  connectUrl() {
    const query = ["topics=" + this.topics.join(",")];
    const since = [...this.positions].map(([t, p]) => `${t}:${p.epoch}:${p.seq}`);
    if (since.length > 0) query.push("since=" + since.join(","));
    return this.url + "?" + query.join("&");
  }

  connect() {
    this.ws = new WebSocket(this.connectUrl());
    this.ws.onopen = () => { this.backoffMs = this.firstBackoffMs; };
    this.ws.onmessage = (event) => this.receive(JSON.parse(event.data));
    this.ws.onclose = () => {
      if (this.closed) return;
      this.reconnects += 1;
      if (this.handlers.onDisconnect) this.handlers.onDisconnect(this.backoffMs);
      setTimeout(() => this.connect(), this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, this.maxBackoffMs);
    };
  }

  receive(frame) {
    const call = (name, value) => this.handlers[name] && this.handlers[name](value);
    switch (frame.type) {
      case "message": {
        const last = this.positions.get(frame.topic);
        // A resumed connection never repeats a message; this guards against applying one twice.
        if (last && last.epoch === frame.epoch && frame.seq <= last.seq) return;
        this.positions.set(frame.topic, { epoch: frame.epoch, seq: frame.seq });
        return call("onMessage", frame);
      }
      case "gap":
        // Messages before `next` are gone: resume from just before it from now on.
        this.positions.set(frame.topic, { epoch: frame.epoch, seq: frame.next - 1 });
        return call("onGap", frame);
      case "subscribed":
        return call("onSubscribed", frame);
      case "error":
        return call("onError", frame);
      default:
        return call("onNotice", frame);
    }
  }

  // Subscribes to one more topic on the open connection.
  subscribe(topic) {
    if (!this.topics.includes(topic)) this.topics.push(topic);
    this.ws.send(JSON.stringify({ op: "subscribe", topics: [topic] }));
  }

  close() {
    this.closed = true;
    this.ws.close();
  }
}

if (typeof module !== "undefined") module.exports = { RingcastSubscriber };
