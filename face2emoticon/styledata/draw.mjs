// Draws one avatar / emoji job to PNG bytes, offline, from the pinned npm packages.
// Jobs: {"style": "avataaars", "options": {...}, "size": 256} (a DiceBear style) or
//       {"emoji": "man-beard", "background": "f2f2f2", "size": 256} (a Twemoji icon).
// All choices (seeds, options) are made by the Python side; this module only draws.
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

export function svgFor(job) {
  if (job.emoji) return emojiSvg(job.emoji, job.background);
  const style = collection[job.style];
  if (!style) throw new Error(`no DiceBear style named ${job.style}`);
  return createAvatar(style, job.options || {}).toString();
}

export function pngFor(job) {
  return new Resvg(svgFor(job), {
    fitTo: { mode: 'width', value: job.size || 256 },
    font: { loadSystemFonts: false },
    shapeRendering: 2,
  }).render().asPng();
}
