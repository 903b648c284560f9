import { escapeLine } from '../../kernel/control-chars.ts';
import { matchProfile } from '../../kernel/profiles.ts';
import type { FocusedWindow } from '../../kernel/types.ts';
import type { CliContext } from '../context.ts';
import { printLine } from '../io.ts';

function windowLine(window: FocusedWindow): string {
  const details = [
    window.desktop,
    window.pid === undefined ? '' : `pid ${window.pid}`,
    window.id === undefined ? '' : `id ${window.id}`,
  ].filter(Boolean);
  // Names and titles are the window owner's text (a web page sets its tab's title): shown, never obeyed.
  const instance = window.instance && window.instance !== window.app ? ` (${escapeLine(window.instance)})` : '';
  return `${escapeLine(window.app)}${instance} ${escapeLine(JSON.stringify(window.title))} [${escapeLine(details.join(', '))}]`;
}

/**
 * `koto profiles test`: the window focused now and the profile a dictation started now would use,
 * the way the daemon chooses it at key-down. Run it from a terminal with a delay
 * (`sleep 3; koto profiles test`) and focus the application meanwhile.
 */
export async function profilesTestCommand(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  const kernel = await ctx.kernel();
  const window = await kernel.focusedWindow();
  const profile = matchProfile(kernel.config.resolved.profiles, window);
  if (flags.json) {
    await printLine(
      JSON.stringify({
        window: window ?? null,
        profile: profile?.name ?? null,
        profiles: kernel.config.resolved.profiles.map((p) => p.name),
      }),
    );
    return 0;
  }
  await printLine(
    `window: ${window ? windowLine(window) : 'unknown (this desktop does not say which window has the focus: see docs/daemon.md, "Which window has the focus")'}`,
  );
  await printLine(
    `profile: ${profile ? profile.name : kernel.config.resolved.profiles.length === 0 ? 'none (the config has no `profiles`)' : window ? 'none matches: the base config applies' : 'none: the base config applies'}`,
  );
  return 0;
}

/** `koto profiles`: each profile and what it matches, in the order they are tried. */
export async function profilesListCommand(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  const kernel = await ctx.kernel();
  const profiles = kernel.config.resolved.profiles.map((p) => ({ name: p.name, app: p.match.app, title: p.match.title ?? null }));
  if (flags.json) {
    await printLine(JSON.stringify(profiles));
    return 0;
  }
  if (profiles.length === 0) await printLine('no profiles (see docs/configuration.md, "Profiles")');
  for (const p of profiles) {
    const match =
      [p.app.length ? `app ${p.app.join(', ')}` : '', p.title ? `title /${p.title}/` : ''].filter(Boolean).join(' and ') ||
      'every known window';
    await printLine(`${p.name}: ${match}`);
  }
  return 0;
}
