// A long-lived renderer: one JSON job per line on stdin, one JSON answer per line on stdout,
// in order: {"id": ..., "ok": true, "png": <base64 PNG>} or {"id": ..., "ok": false, "error": "..."}.
// Jobs are those of draw.mjs, plus an "id" echoed back. Writes {"ready": true} once the packages are loaded.
import { createInterface } from 'node:readline';
import { pngFor } from './draw.mjs';

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
process.stdout.write(JSON.stringify({ ready: true }) + '\n');
rl.on('line', (line) => {
  if (!line.trim()) return;
  let id = null;
  try {
    const job = JSON.parse(line);
    id = job.id ?? null;
    const png = pngFor(job);
    process.stdout.write(JSON.stringify({ id, ok: true, png: Buffer.from(png).toString('base64') }) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({ id, ok: false, error: String(err.message || err) }) + '\n');
  }
});
rl.on('close', () => process.exit(0));
