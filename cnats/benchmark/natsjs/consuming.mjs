// JetStream consumption with nats.js, as cnats/benchmark/consuming.py does it for cnats: the worker fills a memory
// stream of its own with MSGS messages (untimed), then times how long the client takes to receive them all.
// - js consume: an ordered consumer, consume() pulling settings.batch at a time, no acks;
// - js consume (5k): the same with settings.wide_batch messages per pull;
// - js consume (ack): the durable "bench" (explicit acks, max_ack_pending settings.ack_pending), consume(), ack()
//   per message, then a flush so the last acks are on the wire;
// - js consume (ack, 5k): the same with settings.wide_batch messages per pull;
// - js fetch (ack): the same durable, a loop of fetch(settings.batch) with a 5 s expiry, ack() per message, a flush.
// The clock starts once the consumer handle is in hand (before consume()/the first fetch, as in cnats) and stops
// after the last message (and the flush).

import { publishWindowed } from "./sessions.mjs";

const seconds = (since) => (performance.now() - since) / 1000;

// a connection, its JetStream manager and a memory stream holding `msgs` messages of `size` bytes
async function filledStream(nats, url, msgs, size, settings) {
  const nc = await nats.connect({ servers: url });
  const jsm = await nc.jetstreamManager();
  const stream = `BENCH_CONSUME_${process.pid}`;
  const subject = `bench.${stream}`;
  await jsm.streams.add({ name: stream, subjects: [subject], storage: nats.StorageType.Memory });
  const payload = new Uint8Array(size).fill(0x78); // b"x" * size
  await publishWindowed(nc.jetstream(), subject, payload, msgs, settings.publish_window); // as cnats fills it
  return { nc, jsm, stream };
}

async function durable(nats, jsm, stream, settings) {
  await jsm.consumers.add(stream, {
    durable_name: "bench",
    ack_policy: nats.AckPolicy.Explicit,
    max_ack_pending: settings.ack_pending,
  });
  return "bench";
}

async function withStream(nats, url, msgs, size, settings, drain) {
  const { nc, jsm, stream } = await filledStream(nats, url, msgs, size, settings);
  try {
    return await drain(nc, jsm, stream);
  } finally {
    await jsm.streams.delete(stream);
    await nc.close();
  }
}

// the ordered consume's drain, pulling settings[batchKey] at a time
const consumeOrdered = (batchKey) => (nats, url, msgs, size, settings) =>
  withStream(nats, url, msgs, size, settings, async (nc, jsm, stream) => {
    const consumer = await nc.jetstream().consumers.get(stream); // ordered: no name
    const start = performance.now();
    let seen = 0;
    const messages = await consumer.consume({ max_messages: settings[batchKey] });
    for await (const _msg of messages) {
      seen += 1;
      if (seen === msgs) {
        break; // leaving the loop stops the consumer
      }
    }
    return seconds(start);
  });

// the acking consume's drain, pulling settings[batchKey] at a time
const consumeAck = (batchKey) => (nats, url, msgs, size, settings) =>
  withStream(nats, url, msgs, size, settings, async (nc, jsm, stream) => {
    const consumer = await nc.jetstream().consumers.get(stream, await durable(nats, jsm, stream, settings));
    const start = performance.now();
    let seen = 0;
    const messages = await consumer.consume({ max_messages: settings[batchKey] });
    for await (const msg of messages) {
      msg.ack();
      seen += 1;
      if (seen === msgs) {
        break;
      }
    }
    await nc.flush(); // the last acks are on the wire
    return seconds(start);
  });

function fetchAck(nats, url, msgs, size, settings) {
  return withStream(nats, url, msgs, size, settings, async (nc, jsm, stream) => {
    const consumer = await nc.jetstream().consumers.get(stream, await durable(nats, jsm, stream, settings));
    const start = performance.now();
    let seen = 0;
    while (seen < msgs) {
      const batch = await consumer.fetch({ max_messages: Math.min(settings.batch, msgs - seen), expires: 5000 });
      for await (const msg of batch) {
        msg.ack();
        seen += 1;
      }
    }
    await nc.flush();
    return seconds(start);
  });
}

// workload -> (nats module, url, msgs, size, settings) -> seconds
export const DRAINS = {
  "js consume": consumeOrdered("batch"),
  "js consume (5k)": consumeOrdered("wide_batch"),
  "js consume (ack)": consumeAck("batch"),
  "js consume (ack, 5k)": consumeAck("wide_batch"),
  "js fetch (ack)": fetchAck,
};
