// Renders avatar / emoji jobs to PNG, offline, from the pinned npm packages.
//
// Input: a JSON-lines file, one job per line:
//   {"out": "path.png", "size": 256, "style": "avataaars", "options": {...}}   (a DiceBear style)
//   {"out": "path.png", "size": 256, "emoji": "man-beard", "background": "f2f2f2"} (a Twemoji icon)
// Output: the PNGs, and one JSON line per job on stdout ({"out": ..., "ok": true} or an error).
// All choices (seeds, options) are made by the Python side; this script only draws.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { createRequire } from 'node:module';
import { createAvatar } from '@dicebear/core';
import * as collection from '@dicebear/collection';
import { Resvg } from '@resvg/resvg-js';

const require = createRequire(import.meta.url);
const twemoji = require('@iconify-json/twemoji/icons.json');

function emojiSvg(name, background) {
  let icon = twemoji.icons[name];
  if (!icon && twemoji.aliases && twemoji.aliases[name]) icon = twemoji.icons[twemoji.aliases[name].parent];
  if (!icon) throw new Error(`no twemoji icon named ${name}`);
  const w = icon.width || twemoji.width || 36;
  const h = icon.height || twemoji.height || 36;
  // A margin of 1/8 around the glyph, like the avatar styles' framing.
  const m = w / 8;
  const bg = background ? `<rect x="${-m}" y="${-m}" width="${w + 2 * m}" height="${h + 2 * m}" fill="#${background}"/>` : '';
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="${-m} ${-m} ${w + 2 * m} ${h + 2 * m}">${bg}${icon.body}</svg>`;
}

function svgFor(job) {
  if (job.emoji) return emojiSvg(job.emoji, job.background);
  const style = collection[job.style];
  if (!style) throw new Error(`no DiceBear style named ${job.style}`);
  return createAvatar(style, job.options || {}).toString();
}

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
    const svg = svgFor(job);
    const png = new Resvg(svg, {
      fitTo: { mode: 'width', value: job.size || 256 },
      font: { loadSystemFonts: false },
      shapeRendering: 2,
    }).render().asPng();
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
