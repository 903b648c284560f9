import { z } from 'zod';

/**
 * The `rewrite` config section, owned by `koto rewrite` (rewrite.ts); the kernel's schema
 * composes it. Zod only, so loading the schema never loads the rewrite code.
 */

/** Named second-pass prompts (`koto rewrite --template NAME`): "translate to English", "polish as an email". */
export const rewriteSchema = z.strictObject({
  templates: z
    .record(
      z.string().regex(/^[A-Za-z0-9_.-]+$/, 'template names use letters, digits, _ . -'),
      z.strictObject({
        /** The instruction; `{{text}}` is replaced by the text (appended when absent). */
        prompt: z.string().min(1),
        provider: z.string().optional(),
        model: z.string().optional(),
        temperature: z.number().min(0).max(2).optional(),
      }),
    )
    .default({}),
});
