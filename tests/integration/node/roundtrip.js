// MQTT.js over WebSockets against ringmq: connect, subscribe, publish QoS 1, receive it back.
// Usage: node roundtrip.js URL PROTOCOL_VERSION(4|5) TOPIC
// Prints one JSON line {"ok": true, "payload": ..., "subprotocol": ...} and exits 0 on a round
// trip; prints {"ok": false, "error": ...} and exits 1 on an error or after 10 s.
'use strict';
const mqtt = require('mqtt');

const [url, version, topic] = process.argv.slice(2);
const payload = `hello from MQTT.js ${version}`;
const done = (result, code) => {
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(code);
};
const timer = setTimeout(() => done({ ok: false, error: 'timeout' }, 1), 10000);
const client = mqtt.connect(url, {
  protocolVersion: Number(version),
  clientId: `mqttjs-${version}-${process.pid}`,
  reconnectPeriod: 0,
  connectTimeout: 5000,
});
client.on('error', (err) => done({ ok: false, error: String(err) }, 1));
client.on('connect', () => {
  client.subscribe(topic, { qos: 1 }, (err) => {
    if (err) return done({ ok: false, error: `subscribe: ${err}` }, 1);
    client.publish(topic, payload, { qos: 1 });
  });
});
client.on('message', (t, message) => {
  clearTimeout(timer);
  const ok = t === topic && message.toString() === payload;
  const subprotocol = client.stream && client.stream.socket ? client.stream.socket.protocol : null;
  client.end(false, {}, () =>
    done({ ok, topic: t, payload: message.toString(), subprotocol }, ok ? 0 : 1));
});
