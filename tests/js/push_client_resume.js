// Runs examples/push-client.js (the README's browser client) under Node's WebSocket (the
// WHATWG API browsers implement): subscribe, receive, lose the connection, miss messages while
// away, reconnect by itself and resume. Prints one JSON line with what it saw. Bounded: it
// gives up after 20 s.
const { RingcastSubscriber } = require("../../examples/push-client.js");

const [host] = process.argv.slice(2);
const seen = [];
let gaps = 0;
let subscribed = 0;
const timer = setTimeout(() => finish("timeout"), 20000);

function finish(outcome) {
  clearTimeout(timer);
  console.log(JSON.stringify({ outcome, seen, gaps, subscribed, reconnects: sub.reconnects }));
  sub.close();
  process.exit(0);
}

async function publish(data) {
  const reply = await fetch(`http://${host}/publish/live`, { method: "POST", body: data });
  if (reply.status !== 200) throw new Error(`publish ${data}: ${reply.status}`);
}

// A long first backoff: the two publishes while away surely happen before it reconnects.
const sub = new RingcastSubscriber(`ws://${host}/ws`, ["live"], {
  onSubscribed: async () => {
    subscribed += 1;
    if (subscribed === 1) for (const data of ["a", "b", "c"]) await publish(data);
  },
  onMessage: (m) => {
    seen.push([m.seq, m.data]);
    if (seen.length === 3) sub.ws.close();
    if (seen.length === 5) finish("done");
  },
  onDisconnect: async () => {
    await publish("d");
    await publish("e");
  },
  onGap: () => { gaps += 1; },
}, { firstBackoffMs: 1000 });
