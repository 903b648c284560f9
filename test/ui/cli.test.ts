import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { koto } from '../cli/support.ts';
import { request, startPanel, type Panel } from './support.ts';

let panel: Panel | undefined;
afterEach(async () => {
  await panel?.close();
  panel = undefined;
});

describe('koto ui', () => {
  it('--print prints a single-use login link that opens the panel; status shows the address without it', async () => {
    panel = await startPanel();
    const env = { KOTO_HOME: panel.home.dir };
    const printed = await koto(['ui', '--print'], { env });
    expect(printed.code).toBe(0);
    const link = new URL(printed.stdout.trim());
    expect(link.origin).toBe(`http://127.0.0.1:${panel.port}`);
    expect((await request(panel.port, `${link.pathname}${link.search}`)).status).toBe(200);
    const status = await koto(['status', '--json'], { env });
    expect(JSON.parse(status.stdout).ui).toEqual({ url: `http://127.0.0.1:${panel.port}/` });
    expect(status.stdout).not.toContain(link.searchParams.get('token'));
    expect((await koto(['status'], { env })).stdout).toContain(`panel http://127.0.0.1:${panel.port}/`);
  });

  it('opens the link with the desktop opener, never on a command line (a 0600 page forwards to it), and prints no token', async () => {
    panel = await startPanel();
    const bin = path.join(panel.home.dir, 'bin');
    mkdirSync(bin);
    const seen = path.join(panel.home.dir, 'opened.txt');
    writeFileSync(path.join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s' "$1" > '${seen}'\n`);
    chmodSync(path.join(bin, 'xdg-open'), 0o755);
    const run = await koto(['ui'], { env: { KOTO_HOME: panel.home.dir, PATH: `${bin}:/usr/bin:/bin` } });
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe(`opened the control panel (http://127.0.0.1:${panel.port}/) in your browser`);
    const opened = () => {
      try {
        return readFileSync(seen, 'utf8');
      } catch {
        return '';
      }
    };
    await expect.poll(opened, { timeout: 30_000 }).toMatch(/^file:\/\/\//);
    expect(opened()).not.toContain('token');
    const page = fileURLToPath(opened());
    expect(path.dirname(page)).toBe(path.join(panel.home.dir, 'run'));
    expect(statSync(page).mode & 0o777).toBe(0o600);
    const link = /url=([^"]+)"/.exec(readFileSync(page, 'utf8'))?.[1] ?? '';
    expect(link).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${panel.port}/login\\?token=[\\w-]{32}$`));
    expect((await request(panel.port, new URL(link).pathname + new URL(link).search)).status).toBe(200);
  });

  it('without an opener it prints the link and says why', async () => {
    panel = await startPanel();
    const empty = path.join(panel.home.dir, 'empty');
    mkdirSync(empty);
    const run = await koto(['ui'], { env: { KOTO_HOME: panel.home.dir, PATH: empty } });
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/login\?token=/);
    expect(run.stderr).toContain('no browser could be opened (xdg-open not found)');
  });

  it('no daemon: exit 4 with the catalogue error; the panel turned off: exit 1 saying how to turn it on', async () => {
    const none = await koto(['ui'], { env: { KOTO_HOME: path.join('/tmp', `koto-ui-none-${process.pid}`) } });
    expect(none.code).toBe(4);
    expect(none.stderr).toContain('KOTO_ERR_NO_DAEMON');
    panel = await startPanel({ extra: ['    enabled: false'] });
    const off = await koto(['ui', '--print'], { env: { KOTO_HOME: panel.home.dir } });
    expect(off.code).toBe(1);
    expect(off.stderr).toMatch(/the control panel is not available: it is turned off.*daemon\.ui\.enabled: true.*KOTO_ERR_UI_UNAVAILABLE/);
  });
});
