import { z } from 'zod';

/**
 * The control panel's config section (`daemon.ui`), owned here and composed into the daemon's
 * section (src/daemon/config.ts); the kernel's schema only puts the daemon's section in place.
 */

/** Loopback only: the panel shows what a person dictated and can change the config. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(?:\.\d{1,3}){3}$/.test(host);
}

/** The local control panel (`koto ui`), served by the daemon. */
export const uiSchema = z.strictObject({
  enabled: z.boolean().default(true),
  host: z
    .string()
    .default('127.0.0.1')
    .refine(isLoopbackHost, 'must be a loopback address (127.0.0.1, ::1 or localhost): the control panel is never served to the network'),
  /** 0: any free port (`koto ui` and `koto status` say which). */
  port: z.number().int().min(0).max(65535).default(7337),
});
