// A nats.js benchmark worker of `cnats bench` (its nats.js column; cnats/benchmark/natsjs.py starts it):
//
//   node worker.mjs NATSJS_DIR WORKLOAD URL MSGS SIZE SUBJECT SETTINGS [sliced]
//
// NATSJS_DIR holds node_modules/nats (2.x); SETTINGS is a JSON object of the values the Python workloads use (pull
// size, ack window, subjects), so both sides run the same configuration. It speaks the Python workers' protocol:
// - a drain (JetStream consumption) prints one JSON line {"msgs", "elapsed_s", "latency_us"};
// - with `sliced`, a session prints READY once open, then for each line N on stdin runs N operations and prints
//   {"elapsed_s", "latencies_us"} (a subscriber prints ARMED first, then the harness publishes); an empty line, or
//   the end of stdin, closes it.

import { createRequire } from "node:module";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { DRAINS } from "./consuming.mjs";
import { SESSIONS } from "./sessions.mjs";

// Resolves when the line is handed to the pipe: the process may exit right after without losing it.
function emit(line) {
  return new Promise((resolve) => process.stdout.write(`${line}\n`, resolve));
}

async function sliced(open, nats, url, size, subject, settings) {
  const session = await open(nats, url, size, subject, settings);
  try {
    await emit("READY");
    for await (const raw of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
      const line = raw.trim();
      if (!line) {
        break;
      }
      const n = Number.parseInt(line, 10);
      let elapsed;
      let latencies = [];
      if (session.arm) {
        const received = session.arm(n);
        await emit("ARMED");
        elapsed = await received;
      } else {
        [elapsed, latencies] = await session.run(n);
      }
      await emit(JSON.stringify({ elapsed_s: elapsed, latencies_us: latencies, uses_cython: false }));
    }
  } finally {
    await session.close();
  }
}

async function main(argv) {
  const [dir, workload, url, msgs, size, subject, settingsJson, mode] = argv;
  const settings = JSON.parse(settingsJson);
  // the installation the user named, not whatever a parent directory of this script might hold
  const nats = createRequire(import.meta.url)(join(dir, "node_modules", "nats"));
  if (mode === "sliced") {
    const open = SESSIONS[workload];
    if (!open) {
      throw new Error(`no nats.js session for ${JSON.stringify(workload)}`);
    }
    await sliced(open, nats, url, Number(size), subject, settings);
    return;
  }
  const drain = DRAINS[workload];
  if (!drain) {
    throw new Error(`no nats.js workload ${JSON.stringify(workload)} (sessions run sliced only)`);
  }
  const count = Number(msgs);
  const elapsed = await drain(nats, url, count, Number(size), settings);
  await emit(JSON.stringify({ msgs: count, elapsed_s: elapsed, latency_us: null, uses_cython: false }));
}

try {
  await main(process.argv.slice(2));
  process.exit(0); // a timer left behind by the client must not keep the worker alive
} catch (err) {
  await new Promise((resolve) => process.stderr.write(`nats.js worker: ${err?.stack ?? err}\n`, resolve));
  process.exit(1);
}
