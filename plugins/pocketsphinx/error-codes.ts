import type { PluginErrorCode, PluginErrorSpec } from 'koto-voice';

/** The offline engine's own code (`definePlugin({ errors })`, once the kernel's KOTO_ERR_ENGINE_MISSING). */
export const POCKETSPHINX_ERRORS = {
  POCKETSPHINX_ERR_ENGINE_MISSING: {
    message: 'the offline speech engine {engine} is not installed ({detail})',
    fix: '{install}',
    exit: 1,
  },
} as const satisfies Record<PluginErrorCode, PluginErrorSpec>;
