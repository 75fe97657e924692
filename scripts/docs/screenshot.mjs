// A screenshot of a page in headless Chromium after it has had time to
// load, for pictures in docs (the rerun web viewer needs its wasm loaded
// and the recording streamed before there is anything to see; Chromium's
// own --screenshot takes it too early). WebGL runs on SwiftShader.
//
//   npm install --prefix /tmp/pw playwright-core@1
//   NODE_PATH=/tmp/pw/node_modules node scripts/docs/screenshot.mjs URL OUT.png [WAIT_MS]
//
// The commands that made each picture are next to it in the docs.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const [url, out, wait = '60000'] = process.argv.slice(2);
if (!url || !out) {
    console.error('usage: screenshot.mjs URL OUT.png [WAIT_MS]');
    process.exit(2);
}
const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist',
        '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
await page.goto(url);
await page.waitForTimeout(Number(wait));
await page.screenshot({ path: out });
await browser.close();
