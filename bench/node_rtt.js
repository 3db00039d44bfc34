// Node.js `net` ping-pong over a Unix socket: the Node.js baseline of `lapce-ai bench ipc`.
// Usage: node node_rtt.js client SOCKET_PATH COUNT  -> prints {"p50_ns":..,"p99_ns":..}
// The server half runs in a forked child process, as an editor extension host would be.
'use strict';
const net = require('net');
const { fork } = require('child_process');

const [, , mode, path, countArg] = process.argv;
const kBytes = 64;

if (mode === 'server') {
  const server = net.createServer((socket) => {
    socket.on('data', (chunk) => socket.write(chunk));
  });
  server.listen(path, () => process.send('ready'));
  process.on('disconnect', () => process.exit(0));
} else {
  const count = Number(countArg);
  const warmup = Math.floor(count / 10);
  const child = fork(__filename, ['server', path]);
  const timer = setTimeout(() => { child.kill(); process.exit(3); }, 60000);
  child.once('message', () => {
    const socket = net.createConnection(path);
    const payload = Buffer.alloc(kBytes, 0x5a);
    const samples = new Float64Array(count);
    let done = 0;
    let pending = 0;
    let start = 0n;
    const send = () => { start = process.hrtime.bigint(); pending = kBytes; socket.write(payload); };
    socket.on('connect', send);
    socket.on('data', (chunk) => {
      pending -= chunk.length;
      if (pending > 0) return;
      const elapsed = Number(process.hrtime.bigint() - start);
      if (done >= warmup) samples[done - warmup] = elapsed;
      done += 1;
      if (done < warmup + count) {
        send();
        return;
      }
      const sorted = Array.from(samples.subarray(0, count)).sort((a, b) => a - b);
      process.stdout.write(JSON.stringify({
        p50_ns: sorted[Math.floor(count * 0.5)],
        p99_ns: sorted[Math.floor(count * 0.99)],
      }) + '\n');
      clearTimeout(timer);
      socket.destroy();
      child.kill();
    });
  });
}
