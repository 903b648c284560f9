/**
 * The focus plugin's parsers on recorded answers of swaymsg and hyprctl (test/fixtures/focus),
 * and the same answers served by stand-in tools on a controlled PATH, asked through a real
 * kernel's `focusedWindow` hook: desktop detection from the environment, child processes, the
 * deadline, and a failing or garbage-answering tap all ending in "unknown", never an error.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createKernel, definePlugin } from '../../src/index.ts';
import { parseHyprlandActiveWindow, parseSwayTree } from '../../plugins/focus/compositors.ts';
import { focusSource } from '../../plugins/focus/detect.ts';
import { parseOsascript } from '../../plugins/focus/macos.ts';
import { tempHome } from '../support/index.ts';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/focus/${name}`, import.meta.url), 'utf8');
const home = tempHome('koto-focus-');
afterAll(() => home.cleanup());

describe('sway: swaymsg -t get_tree', () => {
  it('names the focused Wayland window by its app id, with its title, pid and con id', () => {
    expect(parseSwayTree(fixture('sway-foot.json'))).toEqual({
      app: 'koto-foot-1',
      instance: undefined,
      title: 'foot',
      pid: 8272,
      id: '5',
      desktop: 'sway',
    });
  });

  it('an XWayland window (floating): its X11 class and instance', () => {
    expect(parseSwayTree(fixture('sway-xwayland-floating.json'))).toEqual({
      app: 'Emacs',
      instance: 'emacs',
      title: 'vim notes.txt - Emacs',
      pid: 4242,
      id: '5',
      desktop: 'sway',
    });
  });

  it('a focused empty workspace: no window', () => {
    expect(parseSwayTree(fixture('sway-empty-workspace.json'))).toBeUndefined();
  });

  it('not JSON: throws (the lookup turns it into unknown)', () => {
    expect(() => parseSwayTree('sway: unable to connect')).toThrow();
  });
});

describe('Hyprland: hyprctl activewindow -j', () => {
  it('a Wayland window: class, title, pid, address', () => {
    expect(parseHyprlandActiveWindow(fixture('hyprland-kitty.json'))).toEqual({
      app: 'kitty',
      instance: undefined,
      title: 'claude — Claude Code',
      pid: 716768,
      id: '0x55e0c6e75980',
      desktop: 'hyprland',
    });
  });

  it('an XWayland window with no class yet: its initial class', () => {
    expect(parseHyprlandActiveWindow(fixture('hyprland-xwayland.json'))).toMatchObject({
      app: 'thunderbird',
      title: 'Inbox - Mozilla Thunderbird',
      pid: 17212,
    });
  });

  it('nothing focused ({}), or a non-JSON answer ("Invalid"): no window', () => {
    expect(parseHyprlandActiveWindow(fixture('hyprland-none.json'))).toBeUndefined();
    expect(parseHyprlandActiveWindow('Invalid\n')).toBeUndefined();
  });
});

describe('macOS: osascript', () => {
  it('name, pid and a title with any characters but a newline', () => {
    expect(parseOsascript('Terminal\n512\nclaude — Claude Code | ~/src\n')).toEqual({
      app: 'Terminal',
      title: 'claude — Claude Code | ~/src',
      pid: 512,
      desktop: 'macos',
    });
    expect(parseOsascript('Finder\n300\n\n')).toEqual({ app: 'Finder', title: '', pid: 300, desktop: 'macos' });
    expect(parseOsascript('\n')).toBeUndefined();
  });
});

describe('which desktop is asked', () => {
  it.each([
    [{ DISPLAY: ':0' }, 'linux', 'x11'],
    [{ WAYLAND_DISPLAY: 'wayland-1', SWAYSOCK: '/run/sway.sock', DISPLAY: ':0' }, 'linux', 'sway'],
    [{ WAYLAND_DISPLAY: 'wayland-1', HYPRLAND_INSTANCE_SIGNATURE: 'abc' }, 'linux', 'hyprland'],
    [{ WAYLAND_DISPLAY: 'wayland-0', XDG_CURRENT_DESKTOP: 'KDE' }, 'linux', 'kde'],
    // GNOME on Wayland: no way to ask; XWayland's DISPLAY would name only X11 windows.
    [{ WAYLAND_DISPLAY: 'wayland-0', XDG_CURRENT_DESKTOP: 'ubuntu:GNOME', DISPLAY: ':0' }, 'linux', 'none'],
    [{}, 'linux', 'none'],
    [{}, 'darwin', 'macos'],
  ] as const)('%o on %s: %s', (env, platform, expected) => {
    expect(focusSource(env, platform)).toBe(expected);
  });
});

/** A folder with stand-in tools (shell scripts) that print a fixture, sleep, or fail. */
function fakeTools(name: string, scripts: Record<string, string>): string {
  const dir = path.join(home.dir, name);
  mkdirSync(dir, { recursive: true });
  for (const [tool, body] of Object.entries(scripts)) {
    writeFileSync(path.join(dir, tool), `#!/bin/sh\n${body}\n`);
    chmodSync(path.join(dir, tool), 0o755);
  }
  return dir;
}

async function kernelWith(env: NodeJS.ProcessEnv) {
  return createKernel({ search: false, builtins: ['focus'], env: { KOTO_HOME: home.dir, ...env }, config: {}, logLevel: 'silent' });
}

describe('through the kernel (stand-in tools on PATH)', () => {
  const fixtures = path.join(home.dir, 'fixtures');
  mkdirSync(fixtures, { recursive: true });
  for (const name of ['sway-foot.json', 'hyprland-kitty.json']) writeFileSync(path.join(fixtures, name), fixture(name));

  it('sway: swaymsg -r -t get_tree is asked, its answer parsed', async () => {
    const bin = fakeTools('sway', { swaymsg: `[ "$*" = "-r -t get_tree" ] || exit 3\ncat '${fixtures}/sway-foot.json'` });
    const kernel = await kernelWith({ PATH: `${bin}:/usr/bin:/bin`, WAYLAND_DISPLAY: 'wayland-1', SWAYSOCK: '/nonexistent' });
    try {
      expect(await kernel.focusedWindow()).toMatchObject({ app: 'koto-foot-1', desktop: 'sway', pid: 8272 });
    } finally {
      await kernel.close();
    }
  });

  it('Hyprland: hyprctl activewindow -j', async () => {
    const bin = fakeTools('hypr', { hyprctl: `[ "$*" = "activewindow -j" ] || exit 3\ncat '${fixtures}/hyprland-kitty.json'` });
    const kernel = await kernelWith({ PATH: `${bin}:/usr/bin:/bin`, WAYLAND_DISPLAY: 'wayland-1', HYPRLAND_INSTANCE_SIGNATURE: 'x' });
    try {
      expect(await kernel.focusedWindow()).toMatchObject({ app: 'kitty', title: 'claude — Claude Code', desktop: 'hyprland' });
    } finally {
      await kernel.close();
    }
  });

  it('KDE: kdotool getactivewindow, then its class, name and pid', async () => {
    const bin = fakeTools('kde', {
      kdotool: [
        'case "$1" in',
        '  getactivewindow) echo "{a1b2c3d4-0000-4000-8000-000000000001}";;',
        '  getwindowclassname) [ "$2" = "{a1b2c3d4-0000-4000-8000-000000000001}" ] && echo org.kde.konsole;;',
        '  getwindowname) echo "~ : claude — Konsole";;',
        '  getwindowpid) echo 3141;;',
        '  *) exit 2;;',
        'esac',
      ].join('\n'),
    });
    const kernel = await kernelWith({ PATH: `${bin}:/usr/bin:/bin`, WAYLAND_DISPLAY: 'wayland-0', XDG_CURRENT_DESKTOP: 'KDE' });
    try {
      expect(await kernel.focusedWindow()).toEqual({
        app: 'org.kde.konsole',
        instance: undefined,
        title: '~ : claude — Konsole',
        pid: 3141,
        id: '{a1b2c3d4-0000-4000-8000-000000000001}',
        desktop: 'kde',
      });
    } finally {
      await kernel.close();
    }
  });

  it('unknown, never an error: the tool missing, failing, answering garbage, or hanging past the deadline', async () => {
    const sway = (bin: string) => ({ PATH: bin, WAYLAND_DISPLAY: 'wayland-1', SWAYSOCK: '/nonexistent' });
    const cases = [
      sway(path.join(home.dir, 'empty-path')),
      sway(fakeTools('failing', { swaymsg: 'echo "sway: unable to connect" >&2; exit 1' })),
      sway(fakeTools('garbage', { swaymsg: 'echo "not json"' })),
    ];
    for (const env of cases) {
      const kernel = await kernelWith(env);
      try {
        expect(await kernel.focusedWindow()).toBeUndefined();
      } finally {
        await kernel.close();
      }
    }
    const kernel = await kernelWith(sway(fakeTools('hanging', { swaymsg: 'exec /bin/sleep 60' })));
    try {
      // The deadline ends it: the stand-in would sleep for a minute.
      expect(await kernel.focusedWindow(undefined, 300)).toBeUndefined();
    } finally {
      await kernel.close();
    }
  });

  it('a cancelled caller: undefined at once, the tool never asked', async () => {
    const marker = path.join(home.dir, 'asked');
    const kernel = await kernelWith({ PATH: fakeTools('marker', { swaymsg: `: > '${marker}'` }), WAYLAND_DISPLAY: 'w', SWAYSOCK: '/x' });
    try {
      expect(await kernel.focusedWindow(AbortSignal.abort())).toBeUndefined();
      expect(existsSync(marker)).toBe(false);
    } finally {
      await kernel.close();
    }
  });

  it('a third-party tap: its answer is used; a throwing tap or one answering without an app is unknown', async () => {
    const answer = (value: unknown) =>
      definePlugin({ name: 'focus-test', apply: (api) => api.hooks.focusedWindow.tapPromise('focus-test', async () => value as never) });
    const thrower = definePlugin({
      name: 'focus-test',
      apply: (api) =>
        api.hooks.focusedWindow.tapPromise('focus-test', async () => {
          throw new Error('compositor went away');
        }),
    });
    const run = async (plugin: ReturnType<typeof definePlugin>) => {
      const kernel = await createKernel({
        search: false,
        builtins: false,
        plugins: [plugin],
        env: { KOTO_HOME: home.dir },
        config: {},
        logLevel: 'silent',
      });
      try {
        return await kernel.focusedWindow();
      } finally {
        await kernel.close();
      }
    };
    expect(await run(answer({ app: 'niri-app', title: 't', desktop: 'niri', pid: -1, extra: 'dropped' }))).toEqual({
      app: 'niri-app',
      instance: undefined,
      title: 't',
      pid: undefined,
      id: undefined,
      desktop: 'niri',
    });
    expect(await run(thrower)).toBeUndefined();
    expect(await run(answer({ title: 'no app', desktop: 'x' }))).toBeUndefined();
    expect(await run(answer('XTerm'))).toBeUndefined();
  });
});
