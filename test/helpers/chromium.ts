// Debian's Chromium driven by playwright-core (no browser download), for the dashboard's browser
// test and its load bench.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright-core';

export const chromiumPath = process.env.CKPT_CHROMIUM ?? '/usr/bin/chromium';

/** A headless Chromium with a fresh profile; `close()` also deletes the profile. */
export async function launchChromium(profilePrefix: string): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), profilePrefix));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1440, height: 1000 },
    // Without the background-networking flags Chromium dials out, and on a closed network its
    // refused connections slow everything down.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
