// Renders avatar / emoji jobs to PNG files, offline, from the pinned npm packages.
//
// Input: a JSON-lines file, one job per line:
//   {"out": "path.png", "size": 256, "style": "avataaars", "options": {...}}   (a DiceBear style)
//   {"out": "path.png", "size": 256, "emoji": "man-beard", "background": "f2f2f2"} (a Twemoji icon)
// Output: the PNGs, and one JSON line per job on stdout ({"out": ..., "ok": true} or an error).
// All choices (seeds, options) are made by the Python side; this script only draws (draw.mjs).
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { pngFor } from './draw.mjs';

const [, , jobsPath] = process.argv;
if (!jobsPath) {
  console.error('usage: node render.mjs JOBS.jsonl');
  process.exit(2);
}
const lines = readFileSync(jobsPath, 'utf8').split('\n').filter((l) => l.trim());
const made = new Set();
for (const line of lines) {
  const job = JSON.parse(line);
  try {
    const png = pngFor(job);
    const dir = dirname(job.out);
    if (!made.has(dir)) {
      mkdirSync(dir, { recursive: true });
      made.add(dir);
    }
    writeFileSync(job.out, png);
    process.stdout.write(JSON.stringify({ out: job.out, ok: true }) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({ out: job.out, ok: false, error: String(err.message || err) }) + '\n');
  }
}
