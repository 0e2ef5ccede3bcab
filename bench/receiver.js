// A webhook receiver as client apps write them, for the throughput benchmark.
//
//   node bench/receiver.js PORT [--verify KEY] [--delay-ms N]
//
// Every POST body is read whole and parsed with JSON.parse; a batch body counts as its
// events. With --verify the Docora
// signature (HMAC-SHA256 of "{timestamp}.{body}") is checked in constant time and a bad
// one answers 401; --delay-ms answers after N ms, like a receiver that writes to its own
// store first. Control routes (GET): /_stats (counts and arrival times in Unix seconds),
// /_reset. Node's http server keeps connections alive and sets TCP_NODELAY.
"use strict";

const http = require("node:http");
const crypto = require("node:crypto");

const args = process.argv.slice(2);
const port = Number(args[0]);
const option = (name) => {
  const at = args.indexOf(name);
  return at < 0 ? null : args[at + 1];
};
const key = option("--verify");
const delayMs = Number(option("--delay-ms") || 0);

let stats;
const reset = () => {
  stats = { count: 0, requests: 0, first: 0, last: 0, by_event: {}, bad_signatures: 0, bytes: 0 };
};
reset();

function verified(req, body) {
  const timestamp = req.headers["x-docora-timestamp"] || "";
  const given = Buffer.from(req.headers["x-docora-signature"] || "");
  const mac = crypto.createHmac("sha256", key);
  mac.update(timestamp + ".");
  mac.update(body);
  const expected = Buffer.from("sha256=" + mac.digest("hex"));
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

function answer(res, status, payload) {
  const data = payload === undefined ? "" : JSON.stringify(payload);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) });
  res.end(data);
}

const server = http.createServer({ noDelay: true }, (req, res) => {
  if (req.method === "GET") {
    if (req.url === "/_reset") reset();
    return answer(res, 200, stats);
  }
  const parts = [];
  req.on("data", (part) => parts.push(part));
  req.on("end", () => {
    const body = Buffer.concat(parts);
    if (key !== null && !verified(req, body)) {
      stats.bad_signatures += 1;
      return answer(res, 401, { error: "bad signature" });
    }
    const parsed = JSON.parse(body.toString("utf8"));
    const now = Date.now() / 1000;
    const event = req.url.slice(req.url.lastIndexOf("/") + 1);
    // A batch body carries many events: count each, as a receiver applies each.
    const events = event === "batch" ? parsed.events.map((e) => e.event) : [event];
    stats.count += events.length;
    stats.requests += 1;
    stats.bytes += body.length;
    stats.first = stats.first || now;
    stats.last = now;
    for (const name of events) stats.by_event[name] = (stats.by_event[name] || 0) + 1;
    if (delayMs > 0) setTimeout(() => answer(res, 200), delayMs);
    else answer(res, 200);
  });
});
server.keepAliveTimeout = 60000;
server.listen(port, "127.0.0.1", () => console.log(`receiver listening on ${port}`));
