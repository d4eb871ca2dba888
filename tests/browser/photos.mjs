// Twenty phone photos dropped at once into one deposit on a small Redis (run by
// tests/browser.rs, `twenty_phone_photos_fit_a_25_mb_redis`): the page shrinks each photo,
// sends them one request each, waits by itself when the server has no room, and every file
// ends done. Prints one JSON line (`photos:` prefix) with the sizes, the shrink times and
// whether "waiting for room" was seen; saves OUT_DIR/waiting-for-room.png when it was.
//
// Environment: BASE_URL, APP_PASSWORD, OUT_DIR, PHOTOS_DIR (*.jpg), CHROMIUM.

import { chromium } from 'playwright-core';
import fs from 'node:fs/promises';
import path from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`photos.mjs: ${name} is not set`);
    process.exit(2);
  }
  return v;
};

const BASE = env('BASE_URL').replace(/\/$/, '');
const PASSWORD = env('APP_PASSWORD');
const OUT = env('OUT_DIR');
const PHOTOS = env('PHOTOS_DIR');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 15 * 60_000;

async function main() {
  const files = (await fs.readdir(PHOTOS)).filter((f) => f.endsWith('.jpg')).sort().map((f) => path.join(PHOTOS, f));
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-background-networking'] });
  const problems = [];
  const started = Date.now();
  try {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    page.setDefaultTimeout(20_000);
    page.on('console', (m) => {
      // A 503 wait verdict is logged by the browser as a failed resource load: expected here.
      if (m.type() === 'error' && !/503/.test(m.text())) problems.push(`console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    await page.goto(`${BASE}/`);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${BASE}/`);
    await page.locator('[data-testid=new-deposit]').click();
    await page.waitForURL(/\/deposits\/[0-9a-f]+$/);
    await page.locator('[data-testid=file-input]').setInputFiles(files);

    const seen = new Map(); // name -> { from, to, ms }
    let waitingShot = false;
    let done = 0;
    for (;;) {
      const rows = await page.locator('[data-testid=file-row]').evaluateAll((els) => els.map((e) => ({
        name: e.dataset.fileName,
        state: e.dataset.state,
        ms: e.dataset.shrinkMs,
        size: e.dataset.size,
        original: e.dataset.originalSize,
        error: (e.querySelector('[data-testid=file-error]') || {}).textContent || '',
      })));
      for (const r of rows) {
        if (r.ms !== undefined && r.original && r.size) {
          seen.set(r.name, { from: Number(r.original), to: Number(r.size), ms: Number(r.ms) });
        }
        if (r.state === 'failed') throw new Error(`${r.name} failed: ${r.error}`);
      }
      if (!waitingShot && rows.some((r) => r.state === 'waiting')) {
        waitingShot = true;
        await page.screenshot({ path: path.join(OUT, 'waiting-for-room.png'), fullPage: true });
      }
      done = rows.filter((r) => r.state === 'done').length;
      if (done === files.length && rows.length === files.length) break;
      if (Date.now() - started > TIMEOUT) throw new Error(`only ${done} of ${files.length} done: ${JSON.stringify(rows)}`);
      await page.waitForTimeout(250);
    }
    await page.screenshot({ path: path.join(OUT, 'photos-done.png'), fullPage: true });
    const shrunk = [...seen.values()];
    console.log(`photos: ${JSON.stringify({
      files: files.length,
      done,
      waiting_seen: waitingShot,
      seconds: Math.round((Date.now() - started) / 1000),
      from_bytes: shrunk.map((s) => s.from),
      to_bytes: shrunk.map((s) => s.to),
      shrink_ms: shrunk.map((s) => s.ms),
    })}`);
  } finally {
    await browser.close();
  }
  if (problems.length) throw new Error(`the page logged ${problems.length} error(s):\n  ${problems.join('\n  ')}`);
}

main().catch((e) => {
  console.error(`photos FAILED: ${e && e.message ? e.message : e}`);
  process.exit(1);
});
