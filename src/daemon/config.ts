import { z } from 'zod';
import { retentionSchema } from '../kernel/retention.ts';
import { uiSchema } from '../ui/config.ts';

/**
 * The `daemon` config section, owned by the daemon (with the retention of its recordings and its
 * control panel, each contributing its own part); the kernel's schema composes it. Zod only:
 * the kernel loads this with its schema, never the daemon itself.
 */
export const daemonSchema = z.strictObject({
  maxRecordingMs: z.number().int().positive().default(300000),
  keepAudio: z.boolean().default(true),
  retention: retentionSchema.prefault({}),
  ui: uiSchema.prefault({}),
});
