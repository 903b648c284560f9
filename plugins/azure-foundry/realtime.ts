/**
 * Streaming transcription for Azure: live recordings of an instance with `realtime` on go to
 * `wss://{resource}.openai.azure.com/openai/v1/realtime?intent=transcription` while the user
 * speaks, the ASR deployment as the session's transcription model, authenticated like every
 * other request of the instance (the marker header, which the `request` hook turns into the
 * `api-key` header or an Entra bearer token on the WebSocket handshake too).
 *
 * The protocol and the session wiring (open at `sessionStart`, feed on `audioFrame`, take the
 * transcript or fall back to the upload) are openai-compatible's, reached through its public
 * entry `koto-voice/openai-wire`; only the URL is Azure's.
 */

import { parseEndpoint, type ResolvedEndpoint } from './endpoint.ts';
import type { RealtimeSettings } from './options.ts';

export interface AzureRealtimeEndpoint {
  /** `https://{resource}.openai.azure.com` (or a Foundry / gateway origin). */
  readonly origin: string;
  /** A gateway's path prefix before `/openai`, without a trailing slash. */
  readonly prefix?: string | undefined;
  /** `api-version`, only when one is configured (the v1 API takes none; `preview` opts in). */
  readonly apiVersion?: string | undefined;
  /**
   * Also put the deployment in the URL as `model=`. Off by default: Azure's v1 transcription
   * socket takes the deployment as `session.audio.input.transcription.model`, and answers 400
   * to `?model=` naming a transcription deployment.
   */
  readonly deploymentInUrl?: boolean | undefined;
  readonly deployment?: string | undefined;
  readonly query?: Readonly<Record<string, string>> | undefined;
}

/** `wss://{resource}.openai.azure.com[/prefix]/openai/v1/realtime?intent=transcription[&api-version=…]`. */
export function azureRealtimeUrl(endpoint: AzureRealtimeEndpoint): URL {
  const url = new URL(`${endpoint.prefix ?? ''}/openai/v1/realtime`, endpoint.origin);
  if (url.protocol === 'https:') url.protocol = 'wss:';
  else if (url.protocol === 'http:') url.protocol = 'ws:';
  url.searchParams.set('intent', 'transcription');
  if (endpoint.apiVersion !== undefined) url.searchParams.set('api-version', endpoint.apiVersion);
  if (endpoint.deploymentInUrl && endpoint.deployment) url.searchParams.set('model', endpoint.deployment);
  for (const [key, value] of Object.entries(endpoint.query ?? {})) url.searchParams.set(key, value);
  return url;
}

/** The origin and prefix of the socket: `realtime.endpoint` when given, else the instance's resource. */
export function realtimeOrigin(
  endpoint: Pick<ResolvedEndpoint, 'origin' | 'prefix'>,
  settings: Pick<RealtimeSettings, 'endpoint'>,
): { origin: string; prefix: string } {
  if (!settings.endpoint) return { origin: endpoint.origin, prefix: endpoint.prefix };
  // `wss://host/prefix` is read as `https://host/prefix` (the handshake's origin, and what the credentials are bound to).
  const parsed = parseEndpoint(settings.endpoint.replace(/^ws(s?):/i, 'http$1:'));
  return { origin: parsed.origin, prefix: parsed.prefix };
}

/** `wss://{origin}{prefix}/openai/v1/realtime?intent=transcription[&api-version=…]`. */
export function realtimeSocketUrl(
  endpoint: Pick<ResolvedEndpoint, 'origin' | 'prefix'>,
  settings: Pick<RealtimeSettings, 'endpoint' | 'apiVersion'>,
): URL {
  const { origin, prefix } = realtimeOrigin(endpoint, settings);
  return azureRealtimeUrl({ origin, prefix, apiVersion: settings.apiVersion });
}
