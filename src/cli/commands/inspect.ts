import { stringify } from 'yaml';
import type { ConfigOrigin } from '../../kernel/config/source.ts';
import { redactConfig } from '../../kernel/secrets.ts';
import type { CliContext } from '../context.ts';
import { printLine } from '../io.ts';
import { KOTO_VERSION } from '../../kernel/version.ts';

/** The config as Koto resolved it (defaults filled, env-derived providers shown), secrets redacted. */
export async function configPrintCommand(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  const kernel = await ctx.kernel();
  const { resolved, ...sections } = kernel.config;
  const providers = Object.fromEntries(Object.values(resolved.providers).map((p) => [p.name, { use: p.use, ...p.options }]));
  const view = redactConfig(
    {
      ...sections,
      providers,
      asr: { ...sections.asr, provider: resolved.asrProvider },
      correction: { ...sections.correction, provider: resolved.correctionProvider },
    },
    resolved.secrets,
  );
  const { origin } = resolved;
  if (flags.json) {
    // `$source` cannot be a config key, so the rest stays the config as Koto sees it.
    const $source = { file: origin.file ?? null, kind: origin.kind, trusted: origin.trusted, skipped: origin.skipped ?? null };
    await printLine(JSON.stringify({ $source, ...(view as object) }));
  } else {
    await printLine(
      `${sourceLines(origin)
        .map((line) => `# ${line}`)
        .join('\n')}\n${stringify(view).trimEnd()}`,
    );
  }
  return 0;
}

const KIND: Record<ConfigOrigin['kind'], string> = {
  explicit: 'given with --config: used as it is',
  project: 'project config, trusted (`koto trust`)',
  user: 'per-user config',
  inline: 'given in code',
  none: '',
};

/** Which file is in effect and why it may be used; which untrusted project config was skipped. */
function sourceLines(origin: ConfigOrigin): string[] {
  const lines = [origin.file ? `${origin.file} (${KIND[origin.kind]})` : 'no config file: defaults and environment'];
  if (origin.skipped) lines.push(skippedLine(origin));
  return lines;
}

function skippedLine(origin: ConfigOrigin): string {
  const skipped = origin.skipped!;
  const why =
    skipped.reason === 'changed'
      ? 'changed since it was trusted'
      : skipped.reason === 'store-unsafe'
        ? 'the trust store is not safe to use'
        : 'not trusted';
  return `skipped ${skipped.file}: ${why}; to use it, review it and run \`${skipped.fix}\``;
}

export async function configCheckCommand(ctx: CliContext): Promise<number> {
  const kernel = await ctx.kernel();
  const { resolved } = kernel.config;
  const providers = Object.keys(resolved.providers);
  await printLine(
    `config OK: ${resolved.file ?? '(no file: defaults and environment)'}; providers: ${providers.join(', ') || 'none'}; ` +
      `asr: ${resolved.asrProvider ?? 'none'}; correction: ${resolved.correctionProvider ?? 'none'}`,
  );
  return 0;
}

export async function pluginsCommand(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  const kernel = await ctx.kernel({ everyBuiltin: true });
  const plugins = kernel.plugins();
  if (flags.json) {
    await printLine(JSON.stringify(plugins));
    return 0;
  }
  for (const p of plugins) {
    const serves = [
      p.capabilities.length ? `providers (${p.capabilities.join(', ')})` : '',
      p.outputs.length ? `outputs (${p.outputs.join(', ')})` : '',
    ].filter(Boolean);
    await printLine(`${p.name}${p.version ? `@${p.version}` : ''}  [${p.source}]${serves.length ? `  serves ${serves.join('; ')}` : ''}`);
    // Where it came from matters when two copies exist (a project's node_modules, a global install).
    if (p.source !== 'builtin' && p.location) await printLine(`  from: ${p.location}`);
    await printLine(`  taps: ${p.taps.join(', ') || 'none'}`);
    if (p.errors.length) await printLine(`  errors: ${p.errors.join(', ')}`);
  }
  return 0;
}

/** Node, config, plugins, then each configured provider: reachable, credentials accepted. */
export async function doctorCommand(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  const checks: { check: string; ok: boolean; detail: string }[] = [];
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  checks.push({
    check: 'node',
    ok: major > 22 || (major === 22 && minor >= 19),
    detail: `Node ${process.versions.node}, koto-voice ${KOTO_VERSION}`,
  });
  const kernel = await ctx.kernel({ everyBuiltin: true });
  checks.push({ check: 'config', ok: true, detail: `${kernel.config.resolved.file ?? 'no file (defaults and environment)'} is valid` });
  if (kernel.config.resolved.origin.skipped) checks.push({ check: 'trust', ok: false, detail: skippedLine(kernel.config.resolved.origin) });
  checks.push({
    check: 'plugins',
    ok: true,
    detail: kernel
      .plugins()
      .map((p) => p.name)
      .join(', '),
  });
  const providers = Object.values(kernel.config.resolved.providers);
  const { resolved } = kernel.config;
  const why = Object.keys(kernel.config.providers).length
    ? 'configured in `providers`'
    : `defaults from the environment: no providers configured; ${
        process.env.OPENAI_API_KEY ? 'OPENAI_API_KEY is set' : 'no OPENAI_API_KEY, so the offline engine and the local corrector'
      }`;
  checks.push({
    check: 'active',
    ok: Boolean(resolved.asrProvider),
    detail: `asr ${resolved.asrProvider ?? 'none'}, correction ${resolved.correctionProvider ?? 'none'} (${why})`,
  });
  if (providers.length === 0) {
    checks.push({ check: 'providers', ok: false, detail: 'none configured: set OPENAI_API_KEY or add `providers` to the config' });
  }
  for (const provider of providers) {
    const result = await kernel.probe(provider.name);
    checks.push({ check: `provider ${provider.name}`, ok: result.ok, detail: ctx.scrub(result.detail) });
  }
  const stats = kernel.http.stats();
  for (const [origin, s] of Object.entries(stats.origins)) {
    if (s.connections > 0)
      checks.push({ check: 'transport', ok: true, detail: `${origin}: ${s.lastProtocol}, ${s.tlsHandshakes} TLS handshake(s)` });
  }
  if (flags.json) await printLine(JSON.stringify(checks));
  else for (const c of checks) await printLine(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.check}: ${c.detail}`);
  return checks.every((c) => c.ok) ? 0 : 1;
}

/** `koto devices`: input devices of the configured audio source; exit 1 when there is no audio system. */
export async function devicesCommand(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  const kernel = await ctx.kernel();
  const devices = await kernel.devices();
  if (flags.json) {
    await printLine(JSON.stringify(devices));
  } else {
    for (const d of devices)
      await printLine(`${d.isDefault ? '* ' : '  '}${d.name}${d.description && d.description !== d.name ? `  (${d.description})` : ''}`);
  }
  if (devices.length === 0) {
    process.stderr.write('koto: no input devices found: is an audio server (PulseAudio/PipeWire) running and a microphone connected?\n');
    return 1;
  }
  return 0;
}
