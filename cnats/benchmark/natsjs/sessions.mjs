// Sessions with nats.js, as cnats/benchmark/streaming.py and sessions.py open them for cnats: set up once, then
// run in the slices the harness asks for. A session has run(n) -> [seconds, latencies in us] and close(); a
// subscriber has arm(n) -> the seconds until its n-th message instead (the harness publishes after ARMED).

const YIELD_EVERY = 4096; // publishes between turns of the event loop, as the cnats publisher does

const seconds = (since) => (performance.now() - since) / 1000;
const turn = () => new Promise((resolve) => setImmediate(resolve));

// n operations one after the other, each awaited and timed (Session in sessions.py)
function timed(op, close) {
  return {
    async run(n) {
      const latencies = new Array(n);
      const start = performance.now();
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await op();
        latencies[i] = (performance.now() - t0) * 1000;
      }
      return [seconds(start), latencies];
    },
    close,
  };
}

// `callers` loops sharing n operations (the concurrent request row)
function concurrent(op, callers, close) {
  return {
    async run(n) {
      let remaining = n;
      const caller = async () => {
        while (remaining > 0) {
          remaining -= 1;
          await op();
        }
      };
      const start = performance.now();
      await Promise.all(Array.from({ length: callers }, caller));
      return [seconds(start), []];
    },
    close,
  };
}

// counts messages from arm(n) on; resolves with the seconds until the n-th (Subscriber in streaming.py)
class Counter {
  constructor() {
    this.count = 0;
    this.target = 0;
    this.start = 0;
    this.done = null;
  }

  arm(n) {
    this.count = 0;
    this.target = n;
    const received = new Promise((resolve) => {
      this.done = resolve;
    });
    this.start = performance.now();
    return received;
  }

  onMsg() {
    this.count += 1;
    if (this.count === this.target && this.done) {
      this.done(seconds(this.start));
    }
  }
}

const payloadOf = (size) => new Uint8Array(size).fill(0x78); // b"x" * size

// -- core publish and subscribe ----------------------------------------------------------------------------------

async function publishAll(nc, subject, payload, n) {
  for (let i = 0; i < n; i++) {
    nc.publish(subject, payload);
    if ((i & (YIELD_EVERY - 1)) === 0) {
      await turn(); // let the event loop write and read between bursts
    }
  }
}

function publisher(withSubscriber) {
  return async (nats, url, size, subject) => {
    const nc = await nats.connect({ servers: url });
    const receiver = new Counter();
    if (withSubscriber) {
      nc.subscribe(subject, { callback: () => receiver.onMsg() });
    }
    await nc.flush();
    const payload = payloadOf(size);
    return {
      async run(n) {
        const received = withSubscriber ? receiver.arm(n) : null;
        const start = performance.now();
        await publishAll(nc, subject, payload, n);
        await nc.flush(); // the server has them all
        if (received) {
          await received;
        }
        return [seconds(start), []];
      },
      close: () => nc.close(),
    };
  };
}

function subscriber(mode) {
  return async (nats, url, size, subject) => {
    const nc = await nats.connect({ servers: url });
    const counter = new Counter();
    if (mode === "callback") {
      nc.subscribe(subject, { callback: () => counter.onMsg() });
    } else {
      const sub = nc.subscribe(subject);
      (async () => {
        for await (const _msg of sub) {
          counter.onMsg();
        }
      })();
    }
    await nc.flush();
    return { arm: (n) => counter.arm(n), close: () => nc.close() };
  };
}

// -- request/reply (the responder is the harness's cnats process) -----------------------------------------------

function requests(together, timeout) {
  return async (nats, url, size, subject, settings) => {
    const nc = await nats.connect({ servers: url });
    const payload = payloadOf(size);
    const op = () => nc.request(settings.request_subject, payload, { timeout });
    const close = () => nc.close();
    return together ? concurrent(op, settings.in_flight, close) : timed(op, close);
  };
}

// -- JetStream publish to a memory stream of the session's own ---------------------------------------------------

async function ownStream(nats, url, settings) {
  const nc = await nats.connect({ servers: url });
  const jsm = await nc.jetstreamManager();
  const stream = `BENCHJS_${nats.nuid.next()}`;
  const subject = `${settings.js_subject}.${stream}`;
  await jsm.streams.add({ name: stream, subjects: [subject], storage: nats.StorageType.Memory });
  const close = async () => {
    await jsm.streams.delete(stream);
    await nc.close();
  };
  return { js: nc.jetstream(), subject, close };
}

async function jsPublish(nats, url, size, subject, settings) {
  const stream = await ownStream(nats, url, settings);
  const payload = payloadOf(size);
  return timed(() => stream.js.publish(stream.subject, payload), stream.close);
}

// Pipelined publishing: nats.js has no publish_async; its js.publish() returns a promise per message. As cnats'
// publish_async does with its window, the loop goes on without waiting while fewer than `window` are unresolved
// (an await of an already resolved promise would still yield, and nats.js writes at every yield) and waits for room
// when the window is full; then for all of them.
export async function publishWindowed(js, subject, payload, n, window) {
  let unresolved = 0;
  let failure = null;
  let waiter = null; // the loop, waiting until fewer than waiter.limit are unresolved
  const settled = () => {
    unresolved -= 1;
    if (waiter && unresolved < waiter.limit) {
      const { resolve } = waiter;
      waiter = null;
      resolve();
    }
  };
  const failed = (err) => {
    failure ??= err;
    settled();
  };
  const below = (limit) =>
    new Promise((resolve) => {
      waiter = { limit, resolve };
    });
  for (let i = 0; i < n; i++) {
    if (unresolved >= window) {
      await below(window);
    }
    if (failure) {
      throw failure;
    }
    unresolved += 1;
    js.publish(subject, payload).then(settled, failed);
  }
  if (unresolved > 0) {
    await below(1);
  }
  if (failure) {
    throw failure;
  }
}

async function jsPublishPipelined(nats, url, size, subject, settings) {
  const stream = await ownStream(nats, url, settings);
  const payload = payloadOf(size);
  return {
    async run(n) {
      const start = performance.now();
      await publishWindowed(stream.js, stream.subject, payload, n, settings.publish_window);
      return [seconds(start), []];
    },
    close: stream.close,
  };
}

// workload -> (nats module, url, size, subject, settings) -> session
export const SESSIONS = {
  pub: publisher(false),
  "sub (callback)": subscriber("callback"),
  "sub (async for)": subscriber("iterator"),
  "pub+sub": publisher(true),
  request: requests(false, 5000),
  "request x100": requests(true, 10000), // settings.in_flight requests in flight
  "js publish": jsPublish,
  "js publish (async)": jsPublishPipelined,
};
