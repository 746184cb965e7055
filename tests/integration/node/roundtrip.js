// MQTT.js over WebSockets against ringmq: connect, subscribe, publish QoS 1, receive it back.
// Usage: node roundtrip.js URL PROTOCOL_VERSION(3|4|5) TOPIC (3: MQTT 3.1, which MQTT.js
// offers as the WebSocket subprotocol "mqttv3.1"; 4 and 5 offer "mqtt")
// Prints one JSON line {"ok": true, "payload": ..., "subprotocol": ...} and exits 0 on a round
// trip; prints {"ok": false, "error": ...} and exits 1 on an error or after 10 s.
'use strict';
const mqtt = require('mqtt');
const WebSocket = require('ws');  // MQTT.js's own dependency

const [url, version, topic] = process.argv.slice(2);
const payload = `hello from MQTT.js ${version}`;
const done = (result, code) => {
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(code);
};
let socket = null;
const timer = setTimeout(() => done({ ok: false, error: 'timeout' }, 1), 10000);
const client = mqtt.connect(url, {
  protocolVersion: Number(version),
  clientId: `mqttjs-${version}-${process.pid}`,
  protocolId: version === '3' ? 'MQIsdp' : 'MQTT',
  reconnectPeriod: 0,
  connectTimeout: 5000,
  // Keeps the WebSocket to read the subprotocol the broker chose.
  createWebsocket: (wsUrl, protocols) => (socket = new WebSocket(wsUrl, protocols)),
});
let result = null;
// After the round trip only the outcome counts: the broker closes the TCP connection right
// after its close frame (it answers DISCONNECT that way), so the close frame `ws` writes back
// may fail with EPIPE.
client.on('error', (err) => {
  if (result === null) done({ ok: false, error: String(err) }, 1);
});
client.on('connect', () => {
  client.subscribe(topic, { qos: 1 }, (err) => {
    if (err) return done({ ok: false, error: `subscribe: ${err}` }, 1);
    client.publish(topic, payload, { qos: 1 });
  });
});
client.on('message', (t, message) => {
  clearTimeout(timer);
  const ok = t === topic && message.toString() === payload;
  const subprotocol = socket === null ? null : socket.protocol;
  result = { ok, topic: t, payload: message.toString(), subprotocol };
  client.end(false, {}, () => done(result, ok ? 0 : 1));
  setTimeout(() => done(result, ok ? 0 : 1), 2000);
});
